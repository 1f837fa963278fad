//! `relay genesys wrapup-codes` against the fake Genesys Cloud: every code with its id, and the
//! `SmsWrapupCodes` value (ids) for rules that name codes.

use std::io::Write;

use relay_cli::genesys_setup::GenesysEnv;
use relay_cli::wrapup_codes::{run, Args};
use relay_tests::fakes::genesys::FakeGenesys;
use secrecy::SecretString;

const CLIENT_ID: &str = "0d6c3b2a-1e4f-4a5b-8c7d-9e0f1a2b3c4d";
const SECRET: &str = "wrapup-client-secret";
const CALLBACK: &str = "6f2d9c1e-4b7a-4e3f-8d5c-1a9b3e7f2c64";

async fn fake() -> FakeGenesys {
    let fake = FakeGenesys::start(CLIENT_ID, SECRET, 3_600).await;
    // More codes than one page holds, so the listing must follow the pages.
    for n in 0..130 {
        fake.add_wrapup_code(
            &format!("00000000-0000-4000-8000-{n:012}"),
            &format!("Code {n:03}"),
        );
    }
    fake.add_wrapup_code(CALLBACK, "Callback Requested");
    fake
}

fn env(fake: &FakeGenesys) -> GenesysEnv {
    GenesysEnv {
        client_id: Some(CLIENT_ID.to_owned()),
        client_secret: Some(SecretString::from(SECRET.to_owned())),
        api_base: Some(fake.base_url()),
        login_base: Some(fake.base_url()),
    }
}

/// A rules file, removed when dropped.
struct RulesFile(std::path::PathBuf);

impl RulesFile {
    fn with(text: &str, name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("relay-rules-{}-{name}.json", std::process::id()));
        let mut file = std::fs::File::create(&path).expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        Self(path)
    }
}

impl Drop for RulesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn every_code_is_listed_with_its_id_across_pages() {
    let fake = fake().await;
    let args = Args {
        rules: None,
        genesys_region: "mypurecloud.com".into(),
    };
    let report = run(&args, &env(&fake)).await.expect("listed");
    let codes = report.json["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 131);
    assert!(codes
        .iter()
        .any(|c| c["id"] == CALLBACK && c["name"] == "Callback Requested"));
    assert!(report
        .text
        .iter()
        .any(|line| line.starts_with(CALLBACK) && line.ends_with("Callback Requested")));
    assert!(report.json.get("sms_wrapup_codes").is_none());
    assert_eq!(fake.calls_to("/api/v2/routing/wrapupcodes").len(), 2);
}

#[tokio::test]
async fn rules_that_name_codes_get_the_ids_the_rule_filter_needs() {
    let fake = fake().await;
    let rules = RulesFile::with(
        r#"{"smsOnWrapup": {"templates": {"Callback Requested": "hi", "ININ-OUTBOUND-NO-ANSWER": "hi"}, "from": "+15005550006"}}"#,
        "names",
    );
    let args = Args {
        rules: Some(rules.0.clone()),
        genesys_region: "mypurecloud.com".into(),
    };
    let report = run(&args, &env(&fake)).await.expect("resolved");
    let value = format!("{CALLBACK},ININ-OUTBOUND-NO-ANSWER");
    assert_eq!(report.json["sms_wrapup_codes"], value.as_str());
    assert!(report.text.contains(&format!("SmsWrapupCodes={value}")));
    assert!(report
        .text
        .iter()
        .any(|l| l.contains(CALLBACK) && l.contains("(Callback Requested)")));

    let unknown = RulesFile::with(
        r#"{"smsOnWrapup": {"templates": {"Call Me Maybe": "hi"}, "from": "+15005550006"}}"#,
        "unknown",
    );
    let args = Args {
        rules: Some(unknown.0.clone()),
        genesys_region: "mypurecloud.com".into(),
    };
    let error = run(&args, &env(&fake)).await.expect_err("unknown name");
    assert!(
        format!("{error:#}").contains("\"Call Me Maybe\""),
        "{error:#}"
    );
}
