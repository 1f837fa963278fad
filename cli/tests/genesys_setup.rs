//! `relay genesys setup-eventbridge` against the fake Genesys Cloud: it creates, configures and
//! enables the integration, converges on a second run, sends nothing in a dry run, and says
//! clearly when the OAuth client is refused. Also checks that the fake's integrations API refuses
//! what the real one refuses.

use std::process::{Command, Output};

use clap::Parser;
use relay_cli::genesys_setup::{self, GenesysEnv, SetupArgs, DEFAULT_TOPICS, INTEGRATION_TYPE};
use relay_tests::fakes::genesys::{FakeGenesys, IntegrationCall, EVENTBRIDGE_TYPE, ORG_ID};
use secrecy::SecretString;
use serde_json::{json, Value};

const CLIENT_ID: &str = "0d6c3b2a-1e4f-4a5b-8c7d-9e0f1a2b3c4d";
const SECRET: &str = "setup-client-secret";
const ACCOUNT: &str = "123456789012";

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: genesys_setup::Command,
}

/// Parsed `setup-eventbridge` arguments: account, region and suffix unless `extra` gives them,
/// then `extra`.
fn setup_args(extra: &[&str]) -> SetupArgs {
    let mut argv = vec!["relay-genesys", "setup-eventbridge"];
    for (flag, value) in [
        ("--account", ACCOUNT),
        ("--aws-region", "us-east-1"),
        ("--suffix", "relay"),
    ] {
        if !extra.contains(&flag) {
            argv.extend([flag, value]);
        }
    }
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("valid arguments").command {
        genesys_setup::Command::SetupEventbridge(args) => args,
        other => panic!("parsed {other:?}"),
    }
}

fn env_for(fake: &FakeGenesys, secret: &str) -> GenesysEnv {
    GenesysEnv {
        client_id: Some(CLIENT_ID.to_owned()),
        client_secret: Some(SecretString::from(secret.to_owned())),
        api_base: Some(fake.base_url()),
        login_base: Some(fake.base_url()),
    }
}

async fn start() -> FakeGenesys {
    FakeGenesys::start(CLIENT_ID, SECRET, 3_600).await
}

fn calls(fake: &FakeGenesys, method: &str, path_part: &str) -> Vec<IntegrationCall> {
    fake.integration_calls()
        .into_iter()
        .filter(|c| c.method == method && c.path.contains(path_part))
        .collect()
}

fn expected_properties(topics: &[&str]) -> Value {
    json!({
        "awsAccountId": ACCOUNT,
        "awsAccountRegion": "us-east-1",
        "eventSourceSuffix": "relay",
        "eventFilter": topics,
    })
}

#[tokio::test]
async fn creates_configures_and_enables_a_new_integration() {
    let fake = start().await;
    let report = genesys_setup::setup_eventbridge(&setup_args(&[]), &env_for(&fake, SECRET))
        .await
        .expect("setup succeeds");

    let integrations = fake.integrations();
    assert_eq!(integrations.len(), 1);
    let created = &integrations[0];
    assert_eq!(created.integration_type, EVENTBRIDGE_TYPE);
    assert_eq!(created.config.name, "genesys-relay");
    assert_eq!(created.intended_state, "ENABLED");
    assert_eq!(created.config.version, 2);
    assert_eq!(
        created.config.properties,
        expected_properties(&DEFAULT_TOPICS)
    );

    // The requests, in order, all with the one token issued.
    let made: Vec<(String, String)> = fake
        .integration_calls()
        .iter()
        .map(|c| (c.method.clone(), c.path.clone()))
        .collect();
    let config_path = format!("/api/v2/integrations/{}/config/current", created.id);
    let item_path = format!("/api/v2/integrations/{}", created.id);
    let expected: Vec<(String, String)> = [
        ("GET", "/api/v2/organizations/me"),
        ("GET", "/api/v2/integrations"),
        ("POST", "/api/v2/integrations"),
        ("GET", config_path.as_str()),
        ("PUT", config_path.as_str()),
        ("PATCH", item_path.as_str()),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(made, expected);
    assert_eq!(fake.tokens_issued(), 1);
    assert!(fake
        .integration_calls()
        .iter()
        .all(|c| c.token == fake.integration_calls()[0].token));

    let listing = &calls(&fake, "GET", "/api/v2/integrations")[0];
    let query = listing.query.as_deref().unwrap_or_default();
    assert!(
        query.contains("integrationType=amazon-eventbridge-source"),
        "{query}"
    );
    assert!(query.contains("pageNumber=1"), "{query}");
    let create = &calls(&fake, "POST", "/api/v2/integrations")[0];
    assert_eq!(
        create.body,
        Some(json!({"name": "genesys-relay", "integrationType": {"id": INTEGRATION_TYPE}}))
    );
    let put = &calls(&fake, "PUT", "/config/current")[0];
    let put_body = put.body.as_ref().unwrap();
    assert_eq!(put_body["version"], 1);
    assert_eq!(put_body["name"], "genesys-relay");
    assert_eq!(put_body["advanced"], json!({}));
    assert_eq!(put_body["credentials"], json!({}));
    let patch = &calls(&fake, "PATCH", "/api/v2/integrations/")[0];
    assert_eq!(patch.body, Some(json!({"intendedState": "ENABLED"})));

    let source = format!("aws.partner/genesys.com/cloud/{ORG_ID}/relay");
    assert_eq!(report.json["action"], "created");
    assert_eq!(report.json["integration_id"], created.id.as_str());
    assert_eq!(report.json["config_version"], 2);
    assert_eq!(report.json["partner_event_source"], source.as_str());
    assert!(report.text.iter().any(|l| l.contains(&created.id)));
    assert!(report.text.iter().any(|l| l.contains(&source)));
    let shown = format!("{:?} {}", report.text, report.json);
    assert!(!shown.contains(SECRET), "{shown}");
}

#[tokio::test]
async fn running_again_updates_the_same_integration() {
    let fake = start().await;
    let env = env_for(&fake, SECRET);
    genesys_setup::setup_eventbridge(&setup_args(&[]), &env)
        .await
        .expect("first run");
    let first_id = fake.integrations()[0].id.clone();

    let topics = ["v2.detail.events.conversation.{id}.acw"];
    let args = setup_args(&["--topic", topics[0]]);
    let report = genesys_setup::setup_eventbridge(&args, &env)
        .await
        .expect("second run");

    let integrations = fake.integrations();
    assert_eq!(integrations.len(), 1, "no second integration");
    assert_eq!(calls(&fake, "POST", "/api/v2/integrations").len(), 1);
    assert_eq!(integrations[0].id, first_id);
    assert_eq!(integrations[0].config.version, 3);
    assert_eq!(
        integrations[0].config.properties,
        expected_properties(&topics)
    );
    assert_eq!(integrations[0].intended_state, "ENABLED");
    assert_eq!(report.json["action"], "updated");
    assert_eq!(report.json["integration_id"], first_id.as_str());
    assert_eq!(report.json["config_version"], 3);
}

#[tokio::test]
async fn the_integration_is_found_on_a_later_page_among_other_names_and_types() {
    let fake = start().await;
    for n in 0..120 {
        fake.add_integration(EVENTBRIDGE_TYPE, &format!("other-{n}"));
    }
    fake.add_integration("purecloud-data-actions", "genesys-relay");
    let target = fake.add_integration(EVENTBRIDGE_TYPE, "genesys-relay");

    let report = genesys_setup::setup_eventbridge(&setup_args(&[]), &env_for(&fake, SECRET))
        .await
        .expect("setup succeeds");

    assert_eq!(report.json["action"], "updated");
    assert_eq!(report.json["integration_id"], target.as_str());
    assert!(calls(&fake, "POST", "/api/v2/integrations").is_empty());
    let listings: Vec<IntegrationCall> = calls(&fake, "GET", "/api/v2/integrations")
        .into_iter()
        .filter(|c| c.path == "/api/v2/integrations")
        .collect();
    let pages: Vec<&str> = listings
        .iter()
        .map(|c| c.query.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("pageNumber=2"), "{pages:?}");
    let updated = fake
        .integrations()
        .into_iter()
        .find(|i| i.id == target)
        .unwrap();
    assert_eq!(updated.intended_state, "ENABLED");
    assert_eq!(
        updated.config.properties,
        expected_properties(&DEFAULT_TOPICS)
    );
    let untouched = fake
        .integrations()
        .into_iter()
        .filter(|i| i.id != target)
        .all(|i| i.config.version == 1 && i.intended_state == "DISABLED");
    assert!(untouched);
}

#[tokio::test]
async fn two_integrations_with_the_name_are_refused_unchanged() {
    let fake = start().await;
    let one = fake.add_integration(EVENTBRIDGE_TYPE, "genesys-relay");
    let two = fake.add_integration(EVENTBRIDGE_TYPE, "genesys-relay");
    let error = genesys_setup::setup_eventbridge(&setup_args(&[]), &env_for(&fake, SECRET))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&one) && error.contains(&two), "{error}");
    assert!(calls(&fake, "PUT", "/config/current").is_empty());
    assert!(calls(&fake, "PATCH", "/api/v2/integrations").is_empty());
}

#[tokio::test]
async fn a_configuration_saved_meanwhile_is_read_again() {
    let fake = start().await;
    fake.race_config_updates(1);
    let report = genesys_setup::setup_eventbridge(&setup_args(&[]), &env_for(&fake, SECRET))
        .await
        .expect("setup succeeds after one conflict");
    let puts = calls(&fake, "PUT", "/config/current");
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].body.as_ref().unwrap()["version"], 1);
    assert_eq!(puts[1].body.as_ref().unwrap()["version"], 2);
    assert_eq!(fake.integrations()[0].config.version, 3);
    assert_eq!(report.json["config_version"], 3);

    fake.race_config_updates(10);
    let error = genesys_setup::setup_eventbridge(&setup_args(&[]), &env_for(&fake, SECRET))
        .await
        .unwrap_err();
    let error = format!("{error:#}");
    assert!(error.contains("kept changing"), "{error}");
    assert!(error.contains("409"), "{error}");
}

#[tokio::test]
async fn missing_credentials_or_bad_arguments_are_refused_before_any_request() {
    let fake = start().await;
    let no_credentials = GenesysEnv {
        api_base: Some(fake.base_url()),
        login_base: Some(fake.base_url()),
        ..GenesysEnv::default()
    };
    let error = genesys_setup::setup_eventbridge(&setup_args(&[]), &no_credentials)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("GENESYS_CLIENT_ID"), "{error}");

    let env = env_for(&fake, SECRET);
    for (flag, value) in [
        ("--account", "12345"),
        ("--aws-region", "US East"),
        ("--suffix", "has space"),
        ("--genesys-region", "example.com"),
        ("--topic", " "),
    ] {
        let args = setup_args(&[flag, value]);
        let error = genesys_setup::setup_eventbridge(&args, &env)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(flag), "{flag}: {error}");
    }
    assert_eq!(fake.requests(), 0);
}

/// Runs the `relay` binary with the Genesys variables of `env` only, without blocking the runtime
/// that serves the fake.
async fn relay(argv: &[&str], env: Vec<(&'static str, String)>) -> Output {
    let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        for name in [
            "GENESYS_CLIENT_ID",
            "GENESYS_CLIENT_SECRET",
            "GENESYS_API_BASE",
            "GENESYS_LOGIN_BASE",
        ] {
            command.env_remove(name);
        }
        command
            .args(&argv)
            .envs(env)
            .output()
            .expect("the relay binary runs")
    })
    .await
    .unwrap()
}

const SETUP: [&str; 8] = [
    "genesys",
    "setup-eventbridge",
    "--account",
    ACCOUNT,
    "--aws-region",
    "us-east-1",
    "--suffix",
    "relay",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_nothing_and_names_the_requests() {
    let fake = start().await;
    let mut argv = SETUP.to_vec();
    argv.push("--dry-run");
    let env = vec![
        ("GENESYS_CLIENT_ID", CLIENT_ID.to_owned()),
        ("GENESYS_CLIENT_SECRET", SECRET.to_owned()),
        ("GENESYS_API_BASE", fake.base_url()),
        ("GENESYS_LOGIN_BASE", fake.base_url()),
    ];
    let output = relay(&argv, env.clone()).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(fake.requests(), 0, "a dry run reaches no server");

    for expected in [
        "GET /api/v2/organizations/me",
        "GET /api/v2/integrations?pageSize=100&pageNumber=1&integrationType=amazon-eventbridge-source",
        "POST /api/v2/integrations",
        "GET /api/v2/integrations/{integrationId}/config/current",
        "PUT /api/v2/integrations/{integrationId}/config/current",
        "PATCH /api/v2/integrations/{integrationId}",
        r#"{"intendedState":"ENABLED"}"#,
        r#""awsAccountId":"123456789012""#,
        r#""eventFilter":["v2.detail.events.conversation.{id}.outbound","v2.detail.events.conversation.{id}.acw"]"#,
        "aws.partner/genesys.com/cloud/<orgId>/relay",
        "not known in a dry run",
    ] {
        assert!(stdout.contains(expected), "{expected} missing from:\n{stdout}");
    }
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));

    argv.push("--json");
    let output = relay(&argv, env).await;
    assert!(output.status.success());
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let methods: Vec<&str> = plan["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["GET", "GET", "POST", "GET", "PUT", "PATCH"]);
    assert_eq!(fake.requests(), 0);
}

/// The JSON type of a value, as the SDK models name them.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The fields of the Platform API model each planned body is, with their types, from the SDKs
/// (platform-client-sdk-go `createintegrationrequest.go`, `integrationconfiguration.go`:
/// `Version *int`, `integration.go`: `IntendedState *string`).
fn sdk_model(method: &str, path: &str) -> &'static [(&'static str, &'static str)] {
    match (method, path) {
        ("POST", "/api/v2/integrations") => &[("name", "string"), ("integrationType", "object")],
        ("PUT", "/api/v2/integrations/{integrationId}/config/current") => &[
            ("name", "string"),
            ("version", "integer"),
            ("properties", "object"),
            ("advanced", "object"),
            ("notes", "string"),
            ("credentials", "object"),
        ],
        ("PATCH", "/api/v2/integrations/{integrationId}") => &[("intendedState", "string")],
        other => panic!("no SDK model known for {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dry_run_body_has_the_types_of_the_sdk_model_and_is_accepted() {
    let fake = start().await;
    let mut argv = SETUP.to_vec();
    argv.extend(["--dry-run", "--json"]);
    let env = vec![
        ("GENESYS_API_BASE", fake.base_url()),
        ("GENESYS_LOGIN_BASE", fake.base_url()),
    ];
    let output = relay(&argv, env).await;
    assert!(output.status.success(), "{output:?}");
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let requests = plan["requests"].as_array().unwrap();
    let with_bodies: Vec<&Value> = requests.iter().filter(|r| !r["body"].is_null()).collect();
    assert_eq!(with_bodies.len(), 3, "{plan}");
    for request in &with_bodies {
        let (method, path) = (
            request["method"].as_str().unwrap(),
            request["path"].as_str().unwrap(),
        );
        let body = request["body"]
            .as_object()
            .expect("a body is a JSON object");
        let model = sdk_model(method, path);
        for (field, value) in body {
            let expected = model
                .iter()
                .find(|(name, _)| name == field)
                .unwrap_or_else(|| panic!("{method} {path}: {field} is not in the SDK model"))
                .1;
            assert_eq!(
                json_type(value),
                expected,
                "{method} {path}: {field} = {value}"
            );
        }
    }
    let put = with_bodies
        .iter()
        .find(|r| r["method"] == "PUT")
        .expect("the configuration is planned");
    assert_eq!(put["body"]["version"], 1, "{put}");
    assert!(
        put["when"].as_str().unwrap().contains("version"),
        "the plan says where the version comes from: {put}"
    );
    assert_eq!(
        with_bodies.iter().find(|r| r["method"] == "POST").unwrap()["body"]["integrationType"]
            ["id"],
        INTEGRATION_TYPE
    );

    // Played in order against the fake, the planned bodies are what a new integration takes.
    let http = reqwest::Client::new();
    let token = token(&fake).await;
    let mut id = String::new();
    for request in &with_bodies {
        let method =
            reqwest::Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
        let path = request["path"]
            .as_str()
            .unwrap()
            .replace("{integrationId}", &id);
        let answer = http
            .request(method.clone(), format!("{}{path}", fake.base_url()))
            .bearer_auth(&token)
            .json(&request["body"])
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let answer: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        if method == reqwest::Method::POST {
            id = answer["id"].as_str().unwrap().to_owned();
        }
    }
    let integrations = fake.integrations();
    assert_eq!(integrations.len(), 1);
    assert_eq!(integrations[0].config.version, 2);
    assert_eq!(integrations[0].intended_state, "ENABLED");
    assert_eq!(
        integrations[0].config.properties,
        expected_properties(&DEFAULT_TOPICS)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_is_a_clear_error() {
    let fake = start().await;
    let wrong = "not-the-right-secret";
    let env = vec![
        ("GENESYS_CLIENT_ID", CLIENT_ID.to_owned()),
        ("GENESYS_CLIENT_SECRET", wrong.to_owned()),
        ("GENESYS_API_BASE", fake.base_url()),
        ("GENESYS_LOGIN_BASE", fake.base_url()),
    ];
    let output = relay(&SETUP, env).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("refused OAuth client"), "{stderr}");
    assert!(stderr.contains(CLIENT_ID), "{stderr}");
    assert!(stderr.contains("GENESYS_CLIENT_SECRET"), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains(wrong) && !stdout.contains(wrong));
    assert_eq!(fake.token_requests(), 1);
    assert!(fake.integration_calls().is_empty());
    assert!(fake.integrations().is_empty());
}

/// A token from the fake, for driving its API directly.
async fn token(fake: &FakeGenesys) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/oauth/token", fake.base_url()))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_fake_integrations_api_refuses_what_genesys_refuses() {
    let fake = start().await;
    let http = reqwest::Client::new();
    let base = fake.base_url();
    let token = token(&fake).await;
    let id = fake.add_integration(EVENTBRIDGE_TYPE, "genesys-relay");
    let list = format!("{base}/api/v2/integrations");
    let item = format!("{base}/api/v2/integrations/{id}");
    let config = format!("{item}/config/current");
    let status = |r: reqwest::Response| r.status().as_u16();

    // Authentication.
    assert_eq!(status(http.get(&list).send().await.unwrap()), 401);
    let forged = http.get(&config).bearer_auth("not-issued").send();
    assert_eq!(status(forged.await.unwrap()), 401);
    assert_eq!(
        status(
            http.get(format!("{base}/api/v2/organizations/me"))
                .send()
                .await
                .unwrap()
        ),
        401
    );
    assert!(
        fake.integration_calls().is_empty(),
        "refused calls are not recorded"
    );

    // Methods, unknown ids, paging parameters.
    assert_eq!(
        status(http.delete(&list).bearer_auth(&token).send().await.unwrap()),
        405
    );
    let unknown = format!("{base}/api/v2/integrations/0000-missing/config/current");
    assert_eq!(
        status(http.get(unknown).bearer_auth(&token).send().await.unwrap()),
        404
    );
    let bad_page = http
        .get(format!("{list}?pageSize=0"))
        .bearer_auth(&token)
        .send();
    assert_eq!(status(bad_page.await.unwrap()), 400);

    // Create: the type is required, fields are known ones.
    for body in [
        json!({"name": "x"}),
        json!({"integrationType": {"id": ""}}),
        json!({"integrationType": {"id": EVENTBRIDGE_TYPE}, "colour": "red"}),
    ] {
        let response = http.post(&list).bearer_auth(&token).json(&body).send();
        assert_eq!(status(response.await.unwrap()), 400, "{body}");
    }

    // Configuration: version checks and the EventBridge properties.
    let good = json!({
        "name": "genesys-relay",
        "version": 1,
        "properties": expected_properties(&DEFAULT_TOPICS),
        "advanced": {},
        "notes": "",
        "credentials": {},
    });
    let mut missing_version = good.clone();
    missing_version.as_object_mut().unwrap().remove("version");
    let mut stale = good.clone();
    stale["version"] = json!(7);
    let mut bad_account = good.clone();
    bad_account["properties"]["awsAccountId"] = json!("12345");
    let mut no_topics = good.clone();
    no_topics["properties"]["eventFilter"] = json!([]);
    for (body, expected) in [
        (missing_version, 400),
        (stale, 409),
        (bad_account, 400),
        (no_topics, 400),
    ] {
        let response = http.put(&config).bearer_auth(&token).json(&body).send();
        assert_eq!(status(response.await.unwrap()), expected, "{body}");
    }
    let as_text = http
        .put(&config)
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(good.to_string());
    assert_eq!(status(as_text.send().await.unwrap()), 400);
    assert_eq!(fake.integrations()[0].config.version, 1);

    let saved: Value = http
        .put(&config)
        .bearer_auth(&token)
        .json(&good)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(saved["version"], 2);
    let again = http.put(&config).bearer_auth(&token).json(&good).send();
    assert_eq!(status(again.await.unwrap()), 409, "version 1 is stale now");

    // Intended state.
    for body in [json!({}), json!({"intendedState": "ON"})] {
        let response = http.patch(&item).bearer_auth(&token).json(&body).send();
        assert_eq!(status(response.await.unwrap()), 400, "{body}");
    }
    let enabled: Value = http
        .patch(&item)
        .bearer_auth(&token)
        .json(&json!({"intendedState": "ENABLED"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(enabled["intendedState"], "ENABLED");
    assert_eq!(enabled["config"]["current"]["version"], 2);

    // The listing's paging shape.
    let page: Value = http
        .get(format!(
            "{list}?pageSize=1&pageNumber=1&integrationType={EVENTBRIDGE_TYPE}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    assert_eq!(page["pageCount"], 1);
    assert_eq!(page["entities"][0]["id"], id.as_str());
    assert_eq!(
        page["entities"][0]["integrationType"]["id"],
        EVENTBRIDGE_TYPE
    );
    assert!(page.get("nextUri").is_none());
}
