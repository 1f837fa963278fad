//! `template.yaml` lets a deployer point the functions at a Genesys region the relay does not list
//! yet: the `GenesysApiBase` / `GenesysLoginBase` parameters reach the processor's (the one
//! function that calls Genesys) `GENESYS_API_BASE` / `GENESYS_LOGIN_BASE`, and left empty (the default)
//! they leave the region's own hosts in place. The template is read with cfn-lint's decoder from the
//! project's `.venv`, as `scripts/local_resources.py` reads it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use genesys_relay::config::GenesysEndpoints;
use genesys_relay::config::{ActionsConfig, Env};
use serde_json::Value;

/// The functions that call Genesys.
const FUNCTIONS: [&str; 1] = ["ProcessorFunction"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Runs a Python snippet with the project's interpreter and parses what it prints as JSON.
fn python_json(code: &str, args: &[&str]) -> Value {
    let output = Command::new(root().join(".venv/bin/python"))
        .arg("-c")
        .arg(code)
        .args(args)
        .current_dir(root())
        .output()
        .expect("the project's python runs (run scripts/tools.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn template() -> Value {
    python_json(
        "import json, sys\n\
         from cfnlint.decode import decode\n\
         template, problems = decode('template.yaml')\n\
         assert not problems, problems\n\
         print(json.dumps(template))",
        &[],
    )
}

/// A function's environment as deployed with `params` (over the parameters' defaults): parameter
/// references take their value, resource references a placeholder, conditional values (`Fn::If`)
/// the branch their condition picks, and other intrinsics are left out.
fn environment(
    template: &Value,
    function: &str,
    params: &[(&str, &str)],
) -> HashMap<String, String> {
    let mut values: HashMap<String, String> = template["Parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, spec)| {
            let default = match &spec["Default"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (name.clone(), default)
        })
        .collect();
    for (name, value) in params {
        values.insert((*name).to_owned(), (*value).to_owned());
    }
    template["Resources"][function]["Properties"]["Environment"]["Variables"]
        .as_object()
        .unwrap_or_else(|| panic!("{function} has environment variables"))
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), resolve(template, value, &values)?)))
        .collect()
}

/// A value of [`environment`]: a string, a `Ref`, or an `Fn::If` of those.
fn resolve(template: &Value, value: &Value, values: &HashMap<String, String>) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            if let Some(target) = o.get("Ref").and_then(Value::as_str) {
                return Some(
                    values
                        .get(target)
                        .cloned()
                        .unwrap_or_else(|| format!("resource-{target}")),
                );
            }
            let branches = o.get("Fn::If")?.as_array()?;
            let condition = &template["Conditions"][branches[0].as_str()?];
            let picked = if holds(template, condition, values)? {
                &branches[1]
            } else {
                &branches[2]
            };
            resolve(template, picked, values)
        }
        other => Some(other.to_string()),
    }
}

/// Whether a condition made of `Fn::Equals`, `Fn::Not`, `Condition` and `Ref` holds; `None` for
/// anything else.
fn holds(template: &Value, condition: &Value, values: &HashMap<String, String>) -> Option<bool> {
    let (function, args) = condition.as_object()?.iter().next()?;
    match function.as_str() {
        "Fn::Equals" => {
            let args = args.as_array()?;
            Some(resolve(template, &args[0], values)? == resolve(template, &args[1], values)?)
        }
        "Fn::Not" => Some(!holds(template, &args[0], values)?),
        "Condition" => holds(template, &template["Conditions"][args.as_str()?], values),
        _ => None,
    }
}

/// The statements of a function's first policy: its own (`Policies`), or that of the role it is
/// given (`Role`), inline (`Statement`) or named (`PolicyDocument`).
fn statements(template: &Value, function: &str) -> Vec<Value> {
    let resources = &template["Resources"];
    let holder = match resources[function]["Properties"]["Role"]["Fn::GetAtt"][0].as_str() {
        Some(role) => &resources[role],
        None => &resources[function],
    };
    let policy = &holder["Properties"]["Policies"][0];
    let document = if policy["PolicyDocument"].is_object() {
        &policy["PolicyDocument"]
    } else {
        policy
    };
    document["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn endpoints(environment: &HashMap<String, String>) -> GenesysEndpoints {
    let env = Env::from_fn(|name| environment.get(name).cloned());
    ActionsConfig::from_env(&env)
        .expect("the template's environment is a valid configuration")
        .genesys
}

#[test]
fn the_genesys_base_overrides_reach_the_processor_and_default_to_the_regions_hosts() {
    let template = template();
    for parameter in ["GenesysApiBase", "GenesysLoginBase"] {
        let spec = &template["Parameters"][parameter];
        assert_eq!(spec["Type"], "String", "{parameter}: {spec}");
        assert_eq!(spec["Default"], "", "{parameter}: {spec}");
    }
    for function in FUNCTIONS {
        let variables = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            variables["GENESYS_API_BASE"]["Ref"], "GenesysApiBase",
            "{function}"
        );
        assert_eq!(
            variables["GENESYS_LOGIN_BASE"]["Ref"], "GenesysLoginBase",
            "{function}"
        );

        let defaults = environment(&template, function, &[("GenesysRegion", "mypurecloud.ie")]);
        assert_eq!(
            endpoints(&defaults),
            GenesysEndpoints::for_region("mypurecloud.ie").unwrap(),
            "{function}: empty overrides leave the region's hosts"
        );

        let overridden = environment(
            &template,
            function,
            &[
                ("GenesysApiBase", "https://api.newregion.pure.cloud"),
                ("GenesysLoginBase", "https://login.newregion.pure.cloud/"),
            ],
        );
        let reached = endpoints(&overridden);
        assert_eq!(
            reached.api_base, "https://api.newregion.pure.cloud",
            "{function}"
        );
        assert_eq!(
            reached.login_base, "https://login.newregion.pure.cloud",
            "{function}"
        );
    }
}

#[test]
fn the_eventbridge_handler_only_queues_and_holds_no_credentials_or_state() {
    let template = template();
    let handler = &template["Resources"]["EventBridgeHandlerFunction"]["Properties"];
    let variables: Vec<&String> = handler["Environment"]["Variables"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        variables,
        ["CLAIM_CHECK_BUCKET", "DLQ_URL", "QUEUE_URL", "RULES"],
        "{variables:?}"
    );
    let actions: Vec<&str> = handler["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|statement| statement["Action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["sqs:SendMessage", "s3:PutObject", "sqs:SendMessage"],
        "{actions:?}"
    );
}

#[test]
fn the_genesys_base_parameters_take_empty_or_an_https_origin_only() {
    let template = template();
    for parameter in ["GenesysApiBase", "GenesysLoginBase"] {
        let pattern = template["Parameters"][parameter]["AllowedPattern"]
            .as_str()
            .unwrap_or_else(|| panic!("{parameter} has an AllowedPattern"))
            .to_owned();
        let values = [
            "",
            "https://api.newregion.pure.cloud",
            "https://login.newregion.pure.cloud/",
            "http://api.newregion.pure.cloud",
            "api.newregion.pure.cloud",
            "https://api.newregion.pure.cloud/api/v2",
            "https://api.newregion.pure.cloud extra",
        ];
        let mut args = vec![pattern.as_str()];
        args.extend(values);
        let matched = python_json(
            "import json, re, sys\n\
             print(json.dumps([re.fullmatch(sys.argv[1], v) is not None for v in sys.argv[2:]]))",
            &args,
        );
        assert_eq!(
            matched,
            serde_json::json!([true, true, true, false, false, false, false]),
            "{parameter}: {pattern}"
        );
    }
}

#[test]
fn the_rotator_may_rotate_exactly_the_relays_secrets_and_only_secrets_manager_invokes_it() {
    let template = template();
    let resources = &template["Resources"];
    let statements = resources["RotatorFunction"]["Properties"]["Policies"][0]["Statement"]
        .as_array()
        .unwrap();
    for statement in statements {
        let actions: Vec<&str> = match &statement["Action"] {
            Value::String(action) => vec![action.as_str()],
            Value::Array(actions) => actions.iter().filter_map(Value::as_str).collect(),
            other => panic!("unexpected actions {other}"),
        };
        assert!(
            actions
                .iter()
                .all(|a| a.starts_with("secretsmanager:") && !a.contains('*')),
            "{actions:?}"
        );
    }
    let rotate = &statements[0];
    let refs: Vec<&str> = rotate["Resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["Ref"].as_str())
        .collect();
    assert_eq!(
        refs,
        ["GenesysWebhookSecret", "TwilioSecret", "GenesysSecret"]
    );
    assert_eq!(statements[1]["Resource"]["Ref"], "GenesysAdminSecret");
    assert_eq!(statements[1]["Action"], "secretsmanager:GetSecretValue");
    // Nobody else reads the admin client.
    for (name, resource) in resources.as_object().unwrap() {
        if name != "RotatorFunction" {
            assert!(
                !resource.to_string().contains("\"GenesysAdminSecret\"")
                    || name == "GenesysAdminSecret",
                "{name} names the admin secret"
            );
        }
    }
    let permission = &resources["RotatorInvokePermission"]["Properties"];
    assert_eq!(permission["Principal"], "secretsmanager.amazonaws.com");
    assert_eq!(permission["SourceAccount"]["Ref"], "AWS::AccountId");
    for (schedule, secret) in [
        ("GenesysWebhookSecretRotation", "GenesysWebhookSecret"),
        ("TwilioSecretRotation", "TwilioSecret"),
        ("GenesysSecretRotation", "GenesysSecret"),
    ] {
        let resource = &resources[schedule];
        assert!(resource["Condition"].is_string(), "{schedule} can be off");
        let properties = &resource["Properties"];
        assert_eq!(properties["SecretId"]["Ref"], secret);
        assert_eq!(properties["RotateImmediatelyOnUpdate"], false);
        assert_eq!(
            properties["RotationRules"]["ScheduleExpression"]["Ref"],
            "RotationSchedule"
        );
    }
    assert_eq!(
        resources["RotationFailuresAlarm"]["Properties"]["Dimensions"][0]["Value"]["Ref"],
        "RotatorFunction"
    );
}

#[test]
fn the_stack_can_create_the_partner_bus_and_archive_its_events() {
    let template = template();
    let resources = &template["Resources"];
    let bus = &resources["GenesysEventBus"];
    assert_eq!(bus["Condition"], "CreatesPartnerBus");
    assert_eq!(bus["Properties"]["Name"]["Ref"], "GenesysEventSourceName");
    assert_eq!(
        bus["Properties"]["EventSourceName"]["Ref"],
        "GenesysEventSourceName"
    );
    let rule_bus = &resources["EventBridgeHandlerFunction"]["Properties"]["Events"]
        ["GenesysEvents"]["Properties"]["EventBusName"]["Fn::If"];
    assert_eq!(rule_bus[0], "CreatesPartnerBus");
    assert_eq!(rule_bus[1]["Ref"], "GenesysEventBus");
    assert_eq!(rule_bus[2]["Ref"], "GenesysEventBusName");
    let archive = &resources["GenesysEventArchive"];
    assert_eq!(archive["Condition"], "HasEventArchive");
    assert_eq!(
        archive["Properties"]["RetentionDays"]["Ref"],
        "EventArchiveRetentionDays"
    );
    assert!(template["Rules"]["GenesysEventBus"]["Assertions"].is_array());

    // A replay of the oldest archived event, after the longest wait on the main queue and in the
    // dead-letter queue, still finds the SMS and delivery claims of what it replays.
    let days = |retention: &Value| retention.as_u64().expect("seconds") / 86_400;
    let archive = template["Parameters"]["EventArchiveRetentionDays"]["MaxValue"]
        .as_u64()
        .expect("the archive's retention is bounded");
    let queue = days(&resources["MainQueue"]["Properties"]["MessageRetentionPeriod"]);
    let dlq = days(&resources["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]);
    let processor = environment(&template, "ProcessorFunction", &[]);
    let remembered = ActionsConfig::from_env(&Env::from_fn(|k| processor.get(k).cloned()))
        .expect("the template's environment is a valid configuration")
        .sms_window
        .as_secs()
        / 86_400;
    assert!(
        archive + queue + dlq < remembered,
        "{archive} days of archive + {queue} on the queue + {dlq} in the DLQ must stay under the \
         {remembered} days the claims are kept"
    );
}

#[test]
fn the_receivers_settings_are_parameters_and_concurrency_is_capped() {
    let template = template();
    let env = &template["Resources"]["ReceiverFunction"]["Properties"]["Environment"]["Variables"];
    for (variable, parameter) in [
        ("EVENT_KEY_POINTERS", "EventKeyPointers"),
        ("GENESYS_HMAC_HEADER", "GenesysHmacHeader"),
        ("GENESYS_HMAC_ENCODING", "GenesysHmacEncoding"),
        ("GENESYS_HMAC_PREFIX", "GenesysHmacPrefix"),
        ("GENESYS_BEARER_HEADER", "GenesysBearerHeader"),
    ] {
        assert_eq!(env[variable]["Ref"], parameter, "{variable}");
    }
    // Their defaults are what the receiver assumes when they are unset.
    let defaults = environment(&template, "ReceiverFunction", &[]);
    let lookup = Env::from_fn(|k| defaults.get(k).cloned());
    assert!(genesys_relay::config::ReceiverConfig::from_env(&lookup).is_ok());
    let processor = &template["Resources"]["ProcessorFunction"]["Properties"];
    assert_eq!(
        processor["Events"]["MainQueue"]["Properties"]["ScalingConfig"]["MaximumConcurrency"]
            ["Ref"],
        "ProcessorMaximumConcurrency"
    );
    assert_eq!(
        processor["Environment"]["Variables"]["PROCESSOR_CONCURRENCY"]["Ref"],
        "ProcessorRecordsInFlight"
    );
    for function in [
        "ReceiverFunction",
        "ProcessorFunction",
        "EventBridgeHandlerFunction",
    ] {
        assert!(
            template["Resources"][function]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"]
                .is_array(),
            "{function}"
        );
    }
    for kept in ["DeadLetterQueue", "StateTable", "ClaimCheckBucket"] {
        assert_eq!(
            template["Resources"][kept]["DeletionPolicy"]["Ref"],
            "DataDeletionPolicy"
        );
    }
    assert_eq!(
        template["Parameters"]["DataDeletionPolicy"]["Default"],
        "Retain"
    );
}

#[test]
fn a_new_stack_can_take_over_the_table_and_bucket_a_deleted_one_kept() {
    let template = template();
    let resources = &template["Resources"];
    for (resource, parameter, condition) in [
        ("StateTable", "ExistingStateTableName", "CreatesStateTable"),
        (
            "ClaimCheckBucket",
            "ExistingClaimCheckBucketName",
            "CreatesClaimCheckBucket",
        ),
    ] {
        assert_eq!(
            template["Parameters"][parameter]["Default"], "",
            "{parameter}"
        );
        assert_eq!(resources[resource]["Condition"], condition, "{resource}");
        let chosen =
            serde_json::json!({"Fn::If": [condition, {"Ref": resource}, {"Ref": parameter}]});
        assert_eq!(
            template["Conditions"][condition],
            serde_json::json!({"Fn::Equals": [{"Ref": parameter}, ""]})
        );
        let output = if resource == "StateTable" {
            "TableName"
        } else {
            "ClaimCheckBucketName"
        };
        assert_eq!(template["Outputs"][output]["Value"], chosen, "{output}");
    }
    // Every function that uses them is given the one in use, and may use only that one.
    let table = serde_json::json!({"Fn::If": ["CreatesStateTable", {"Ref": "StateTable"}, {"Ref": "ExistingStateTableName"}]});
    let bucket = serde_json::json!({"Fn::If": ["CreatesClaimCheckBucket", {"Ref": "ClaimCheckBucket"}, {"Ref": "ExistingClaimCheckBucketName"}]});
    let processor = &resources["ProcessorFunction"]["Properties"];
    assert_eq!(processor["Environment"]["Variables"]["TABLE_NAME"], table);
    for function in [
        "ReceiverFunction",
        "ProcessorFunction",
        "EventBridgeHandlerFunction",
    ] {
        let properties = &resources[function]["Properties"];
        assert_eq!(
            properties["Environment"]["Variables"]["CLAIM_CHECK_BUCKET"], bucket,
            "{function}"
        );
        let claim_checks = statements(&template, function)
            .into_iter()
            .find(|s| {
                s["Sid"]
                    .as_str()
                    .is_some_and(|sid| sid.ends_with("ClaimChecks"))
            })
            .unwrap_or_else(|| panic!("{function} may use claim checks"));
        assert_eq!(
            claim_checks["Resource"]["Fn::Sub"][1]["Bucket"], bucket,
            "{function}"
        );
    }
    let state = statements(&template, "ProcessorFunction")
        .into_iter()
        .find(|s| s["Sid"] == "StateTable")
        .expect("the processor may use the state table");
    assert_eq!(state["Resource"]["Fn::If"][0], "CreatesStateTable");
    assert_eq!(
        state["Resource"]["Fn::If"][1]["Fn::GetAtt"][0],
        "StateTable"
    );
    assert!(state["Resource"]["Fn::If"][2]["Fn::Sub"]
        .as_str()
        .unwrap()
        .ends_with(":table/${ExistingStateTableName}"));
    let policy = &resources["ClaimCheckBucketPolicy"];
    assert_eq!(policy["Properties"]["Bucket"], bucket);
    assert_eq!(policy["DeletionPolicy"]["Ref"], "DataDeletionPolicy");
}

#[test]
fn fifo_queues_are_a_parameter_and_the_eventbridge_side_keeps_a_standard_dlq() {
    let template = template();
    let resources = &template["Resources"];
    assert_eq!(template["Parameters"]["QueueType"]["Default"], "standard");
    assert_eq!(
        template["Conditions"]["UsesFifoQueues"]["Fn::Equals"][1],
        "fifo"
    );
    // A FIFO main queue needs a FIFO dead-letter queue (SQS refuses a mixed redrive).
    for queue in ["MainQueue", "DeadLetterQueue"] {
        assert_eq!(
            resources[queue]["Properties"]["FifoQueue"]["Fn::If"][0], "UsesFifoQueues",
            "{queue}"
        );
    }
    // EventBridge dead-letter queues and Lambda on-failure destinations take no FIFO queue: the
    // EventBridge side writes to a standard one, which only a FIFO stack creates.
    let event_dlq = &resources["EventDeadLetterQueue"];
    assert_eq!(event_dlq["Condition"], "UsesFifoQueues");
    assert!(event_dlq["Properties"].get("FifoQueue").is_none());
    assert_eq!(event_dlq["DeletionPolicy"]["Ref"], "DataDeletionPolicy");
    let handler = &resources["EventBridgeHandlerFunction"]["Properties"];
    let to_event_dlq = |value: &Value| {
        let branches = &value["Fn::If"];
        assert_eq!(branches[0], "UsesFifoQueues", "{value}");
        assert!(
            branches[1].to_string().contains("EventDeadLetterQueue"),
            "{value}"
        );
        assert!(
            !branches[2].to_string().contains("EventDeadLetterQueue"),
            "{value}"
        );
    };
    to_event_dlq(&handler["Environment"]["Variables"]["DLQ_URL"]);
    to_event_dlq(&handler["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]);
    to_event_dlq(&handler["Events"]["GenesysEvents"]["Properties"]["DeadLetterConfig"]["Arn"]);
    // The processor's letters stay with the main queue's kind.
    assert_eq!(
        resources["ProcessorFunction"]["Properties"]["Environment"]["Variables"]["DLQ_URL"]["Ref"],
        "DeadLetterQueue"
    );
    // A FIFO event source takes no batching window and at most 10 records.
    let source = &resources["ProcessorFunction"]["Properties"]["Events"]["MainQueue"]["Properties"];
    assert_eq!(
        source["MaximumBatchingWindowInSeconds"]["Fn::If"][1]["Ref"],
        "AWS::NoValue"
    );
    assert!(template["Rules"]["FifoBatchSize"]["Assertions"].is_array());
    assert_eq!(
        resources["EventDeadLetterQueueAlarm"]["Condition"],
        "UsesFifoQueues"
    );
}

#[test]
fn the_alarms_and_the_dashboard_name_metrics_the_functions_publish() {
    let template = template();
    let resources = template["Resources"].as_object().unwrap();
    for alarm in [
        "ProcessorErrorsAlarm",
        "ProcessorThrottlesAlarm",
        "EventBridgeHandlerErrorsAlarm",
        "EventBridgeHandlerThrottlesAlarm",
        "MainQueueAgeAlarm",
        "SmsFailureRatioAlarm",
        "GenesysThrottledAlarm",
        "ForwardEndpointDisabledAlarm",
        "DeadLetterQueueAlarm",
        "RotationFailuresAlarm",
    ] {
        assert_eq!(
            resources[alarm]["Type"], "AWS::CloudWatch::Alarm",
            "{alarm}"
        );
    }
    // The dashboard's JSON, with every ${...} substitution filled, parses, and the metrics it
    // reads are the ones the functions' EMF lines carry.
    let sub = &resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
    let body = sub.as_str().or_else(|| sub[0].as_str()).unwrap();
    let mut filled = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("${") {
        filled.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        filled.push_str("placeholder");
        rest = &rest[end + 1..];
    }
    filled.push_str(rest);
    let dashboard: Value = serde_json::from_str(&filled).expect("the dashboard is JSON");
    let text = dashboard.to_string();
    for action in [
        "sms_on_wrapup",
        "delivery_status",
        "status_check",
        "forward",
    ] {
        assert!(text.contains(&format!("\"{action}\"")), "{action}");
    }
    assert!(text.contains("\"Throttled\"") && text.contains("\"Outcomes\""));
    // Twilio's delivery statuses, as the write-back counts them, beside the relay's outcomes.
    for status in ["delivered", "undelivered", "failed"] {
        assert!(
            text.contains(&format!("\"SmsStatuses\",\"status\",\"{status}\"")),
            "{status}"
        );
    }
    let reads = |alarm: &str| {
        resources[alarm]["Properties"]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(
        reads("SmsFailureRatioAlarm").contains(&"SmsStatuses".to_owned()),
        "texts Twilio could not deliver count as failures"
    );
    assert!(dashboard["widgets"].as_array().unwrap().len() >= 8);
}

#[test]
fn every_sam_local_invoke_in_the_readme_names_a_function_an_event_and_its_settings() {
    let template = template();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("events/env.json")).unwrap())
            .unwrap();
    let commands: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("sam local invoke "))
        .collect();
    assert_eq!(commands.len(), 4, "one per function");
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let function = words[3];
        assert_eq!(
            template["Resources"][function]["Type"], "AWS::Serverless::Function",
            "{command}"
        );
        let after = |flag: &str| {
            let at = words.iter().position(|w| *w == flag).unwrap();
            words[at + 1]
        };
        assert!(root().join(after("-e")).is_file(), "{command}");
        assert_eq!(after("--env-vars"), "events/env.json", "{command}");
        // SAM sets only the variables the template declares for the function.
        let declared = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        let variables = settings[function].as_object().expect(function);
        for name in variables.keys().filter(|name| *name != "AWS_ENDPOINT_URL") {
            assert!(
                declared.get(name).is_some(),
                "{function} does not declare {name}"
            );
        }
    }
}
