//! `relay genesys wrapup-codes`: the organization's wrap-up codes with their ids, and the
//! `SmsWrapupCodes` value the stack's EventBridge rule needs for the rules' templates.
//!
//! `.acw` events carry a code's id, not its name, and the rule filters on what the events carry,
//! so the filter must list ids even when the rules name codes. The codes come from
//! `GET /api/v2/routing/wrapupcodes` (RoutingApi.getRoutingWrapupcodes) through the same Genesys
//! client and name resolution the functions use.

use anyhow::{anyhow, Context};
use genesys_relay::actions::wrapup_codes::WrapupTemplates;
use genesys_relay::outbound::genesys::WrapupCode;
use genesys_relay::rules::Rules;
use serde_json::json;

use crate::genesys_setup::GenesysEnv;
use crate::output::Report;

/// Arguments of `relay genesys wrapup-codes`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The rules (the stack's `Rules` parameter) as a JSON file; without it, `RULES` or
    /// `RULES_FILE` from the environment when set.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<std::path::PathBuf>,
    /// The Genesys Cloud region domain of the organization.
    #[arg(long, value_name = "DOMAIN", default_value = "mypurecloud.com")]
    pub genesys_region: String,
}

/// Lists the codes and, when rules are given, the ids their templates select.
pub async fn run(args: &Args, env: &GenesysEnv) -> anyhow::Result<Report> {
    let rules = read_rules(args)?;
    let client = env.client(&args.genesys_region, "routing:wrapupCode:view")?;
    let mut codes = client
        .wrapup_codes(None)
        .await
        .context("cannot list the wrap-up codes")?;
    codes.sort_by_key(|c| c.name.to_lowercase());
    let Some(rule) = rules.and_then(|r| r.sms_on_wrapup) else {
        return Ok(listing(&codes, None));
    };
    let templates = WrapupTemplates::new(&rule);
    templates
        .resolve(&client)
        .await
        .context("the rules name wrap-up codes that cannot be resolved")?;
    let filter = templates.ids();
    Ok(listing(&codes, Some(&filter)))
}

/// The rules from `--rules`, else from the environment the functions read, else none.
fn read_rules(args: &Args) -> anyhow::Result<Option<Rules>> {
    let text = match &args.rules {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => match (
            std::env::var("RULES").ok(),
            std::env::var("RULES_FILE").ok(),
        ) {
            (Some(inline), _) if !inline.trim().is_empty() => Some(inline),
            (_, Some(path)) if !path.trim().is_empty() => Some(
                std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?,
            ),
            _ => None,
        },
    };
    text.map(|t| Rules::parse(&t).map_err(|e| anyhow!("{e}")))
        .transpose()
}

/// The report: every code, and the filter value with the template each id selects.
fn listing(codes: &[WrapupCode], filter: Option<&[(String, String)]>) -> Report {
    let width = codes.iter().map(|c| c.id.len()).max().unwrap_or(2).max(2);
    let mut text = vec![format!("{:width$}  NAME", "ID")];
    text.extend(codes.iter().map(|c| format!("{:width$}  {}", c.id, c.name)));
    text.push(format!("{} wrap-up codes", codes.len()));
    let mut json = json!({ "codes": codes });
    if let Some(filter) = filter {
        let value = filter
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
            .join(",");
        text.push(String::new());
        text.push("the rules' templates select:".into());
        text.extend(filter.iter().map(|(id, key)| {
            if id == key {
                format!("  {id}")
            } else {
                format!("  {id}  ({key})")
            }
        }));
        text.push(format!("SmsWrapupCodes={value}"));
        json["templates"] = filter
            .iter()
            .map(|(id, key)| json!({"id": id, "template": key}))
            .collect();
        json["sms_wrapup_codes"] = value.into();
    }
    Report::new(text, json)
}
