//! `scripts/local_resources.py` builds the local stack from `template.yaml`: the local state table
//! expires items by the template's `TimeToLiveSpecification`, so local runs and deployments keep
//! the same records. Needs the project's `.venv` (moto server, boto3, cfn-lint), as `relay local` does.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_dynamodb::types::TimeToLiveStatus;
use relay_tests::LocalAws;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The state table's TTL attribute as `template.yaml` declares it (the `AttributeName` under the
/// one `TimeToLiveSpecification`), read from the text so the check does not share the script's
/// parser.
fn template_ttl_attribute(template: &str) -> String {
    let mut lines = template
        .lines()
        .skip_while(|l| l.trim() != "TimeToLiveSpecification:");
    assert!(
        lines.next().is_some(),
        "template.yaml has no TimeToLiveSpecification"
    );
    let spec: Vec<&str> = lines
        .take_while(|l| l.starts_with("        "))
        .map(str::trim)
        .collect();
    assert!(spec.contains(&"Enabled: true"), "{spec:?}");
    spec.iter()
        .find_map(|l| l.strip_prefix("AttributeName:"))
        .map(|name| name.trim().to_owned())
        .expect("the TimeToLiveSpecification names its attribute")
}

#[tokio::test]
async fn the_local_table_expires_items_by_the_templates_ttl_attribute() {
    let root = root();
    let template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    let attribute = template_ttl_attribute(&template);
    assert_eq!(attribute, genesys_relay::state::table::EXPIRES_AT);

    let aws = LocalAws::start().await;
    let endpoint = aws.endpoint.clone();
    let python = root.join(".venv/bin/python");
    let script = root.join("scripts/local_resources.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(endpoint)
            .output()
            .expect("the project's python runs (run scripts/tools.sh)")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let table = created["table"].as_str().expect("the table is named");

    let ttl = aws
        .dynamodb()
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .time_to_live_description
        .expect("a TTL description");
    assert_eq!(ttl.attribute_name.as_deref(), Some(attribute.as_str()));
    assert!(
        matches!(
            ttl.time_to_live_status,
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
        ),
        "{ttl:?}"
    );
}
