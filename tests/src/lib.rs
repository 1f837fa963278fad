//! Test harness: a local AWS (moto server) per test, on a free port, stopped when dropped.
//!
//! The server binary is `$MOTO_SERVER`, else the project's `.venv/bin/moto_server` (installed by
//! `scripts/tools.sh`), else `moto_server` on the PATH.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::SqsEvent;

pub use relay_local::{fakes, lambda_record};
pub mod providers;
pub mod rotation;

/// A running moto server, killed on drop.
pub struct LocalAws {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    /// SDK configuration pointing at it.
    pub sdk: SdkConfig,
}

fn moto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("moto_server")
    }
}

/// A port free now and never handed out before in this process, so parallel tests never race
/// for the same one.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if TAKEN.lock().expect("port registry").insert(port) {
            return port;
        }
    }
}

impl LocalAws {
    /// Starts a server and waits (at most 30 s) until it accepts connections.
    pub async fn start() -> Self {
        let port = free_port();
        let mut child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (run scripts/tools.sh to install it into .venv)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The port answers; make sure it is our server that does.
        let exited = child.try_wait().expect("moto_server status");
        assert!(
            exited.is_none(),
            "moto_server exited ({exited:?}): port {port} was taken"
        );
        let sdk = genesys_relay::aws::local(&endpoint).await;
        Self {
            child,
            endpoint,
            sdk,
        }
    }

    /// Stops the server now (to test what happens when AWS is unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    /// An S3 client (path-style).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        genesys_relay::aws::s3_client(&self.sdk)
    }

    /// A Secrets Manager client.
    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    /// Creates a queue and returns its URL; a `.fifo` name makes a FIFO queue.
    pub async fn queue(&self, name: &str) -> String {
        let mut request = self.sqs().create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            request = request.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
        }
        request
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url")
    }

    /// A DynamoDB client.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// A DynamoDB client whose requests reach moto one at a time, through a relay that lives as
    /// long as the returned handle. DynamoDB applies each conditional write atomically; moto's
    /// threaded server checks the condition and applies the write in separate steps, so tests of
    /// concurrent conditional writes use this to get DynamoDB's guarantee.
    pub async fn serialized_dynamodb(&self) -> (fakes::server::Served, aws_sdk_dynamodb::Client) {
        let relay = fakes::server::one_at_a_time(&self.endpoint).await;
        let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
            .endpoint_url(&relay.base_url)
            .build();
        (relay, aws_sdk_dynamodb::Client::from_conf(config))
    }

    /// Creates the state table as the template defines it (`pk`/`sk` strings, on demand).
    pub async fn table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let attribute = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition")
        };
        let key = |n: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .expect("key")
        };
        self.dynamodb()
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .send()
            .await
            .expect("create table");
    }

    /// Creates a bucket.
    pub async fn bucket(&self, name: &str) {
        self.s3()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("create bucket");
    }

    /// Creates a secret and returns its ARN.
    pub async fn secret(&self, name: &str, value: &str) -> String {
        let out = self
            .secrets()
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("create secret");
        out.arn.expect("secret arn")
    }

    /// Every message now on a queue (received with all attributes, not deleted).
    pub async fn messages(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let out = self
                .sqs()
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .message_attribute_names("All")
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive");
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }
}

impl LocalAws {
    /// Receives what is visible on a queue (hidden for `visibility_secs` afterwards) as the SQS
    /// event Lambda would hand the processor.
    pub async fn receive_batch(&self, queue_url: &str, visibility_secs: i32) -> SqsEvent {
        let out = self
            .sqs()
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility_secs)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let mut event = SqsEvent::default();
        event.records = out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(lambda_record)
            .collect();
        event
    }
}

impl LocalAws {
    /// Makes `records` visible again at once: the retry a test drives instead of waiting out the
    /// backoff the processor chose.
    pub async fn show_again<'a>(
        &self,
        queue_url: &str,
        records: impl IntoIterator<Item = &'a aws_lambda_events::event::sqs::SqsMessage>,
    ) {
        for record in records {
            self.sqs()
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(record.receipt_handle.clone().unwrap_or_default())
                .visibility_timeout(0)
                .send()
                .await
                .expect("visible again");
        }
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A string attribute of a received message.
pub fn attribute(message: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    message
        .message_attributes
        .as_ref()?
        .get(name)?
        .string_value
        .clone()
}

/// Signatures computed here, independently of the product's own signers.
pub mod sign {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Hmac, Mac};

    fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// `X-Hub-Signature-256` as Genesys Open Messaging sends it.
    pub fn hub_signature(secret: &str, body: &str) -> String {
        format!(
            "sha256={}",
            STANDARD.encode(hmac_sha256(secret.as_bytes(), body.as_bytes()))
        )
    }

    /// `X-Twilio-Signature` for a form POST to `url`.
    pub fn twilio(token: &str, url: &str, params: &[(&str, &str)]) -> String {
        let mut sorted = params.to_vec();
        sorted.sort();
        let data: String = std::iter::once(url.to_owned())
            .chain(sorted.iter().map(|(k, v)| format!("{k}{v}")))
            .collect();
        STANDARD.encode(hmac_sha1(token.as_bytes(), data.as_bytes()))
    }

    /// `webhook-signature` per Standard Webhooks.
    pub fn standard_webhooks(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
        let key = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .expect("base64 secret");
        format!(
            "v1,{}",
            STANDARD.encode(hmac_sha256(
                &key,
                format!("{id}.{timestamp}.{body}").as_bytes()
            ))
        )
    }
}

/// An API Gateway HTTP API (v2) request, as API Gateway hands it to the function.
pub fn http_api_request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> lambda_http::Request {
    let mut map = serde_json::Map::new();
    map.insert(
        "host".into(),
        "abc123.execute-api.us-east-1.amazonaws.com".into(),
    );
    map.insert("x-forwarded-proto".into(), "https".into());
    for (k, v) in headers {
        map.insert(k.to_ascii_lowercase(), (*v).into());
    }
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": map,
        "requestContext": {"accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "test"},
            "requestId": "req-test", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:05:00:00 +0000", "timeEpoch": 1795150800000_i64},
        "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API event")
}

/// A sample event from `events/`.
pub fn sample_event(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The secrets the sample events in `events/` are signed with (documented in the README).
pub mod test_secrets {
    /// Genesys webhook secret (HMAC, `X-Hub-Signature-256`).
    pub const GENESYS_WEBHOOK: &str = "test-webhook-secret";
    /// Twilio auth token.
    pub const TWILIO_AUTH_TOKEN: &str = "test-auth-token";
}
