//! An in-memory DynamoDB on 127.0.0.1 that serves requests concurrently, each answered after a
//! fixed latency, and relays every other AWS request unchanged to the local AWS (moto).
//!
//! moto works through DynamoDB calls about one after the other, so against it a batch mostly
//! measures moto's throughput. DynamoDB serves concurrent requests in parallel, and so does this
//! stand-in: against it the batch figure is about the processor's own concurrency.
//!
//! It speaks the DynamoDB JSON 1.0 protocol for exactly what the processor's SMS-on-wrap-up path
//! sends (`shared/src/state/claims.rs`, `shared/src/state/sms.rs`): GetItem, PutItem, UpdateItem
//! and DeleteItem on one table keyed by the strings `pk` and `sk`, string and integer attributes,
//! and the condition and update expressions those files use. Any other operation, request field,
//! attribute type or expression construct is answered with a `ValidationException` naming it and
//! recorded as a refusal, so nothing passes by being ignored.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use relay_tests::fakes::server::{bind, lock, relay, serve, Served};
use serde_json::{json, Map, Value};

/// How a DynamoDB request names its operation in `X-Amz-Target`.
const TARGET_PREFIX: &str = "DynamoDB_20120810.";
/// The table's key attributes (partition, sort), both strings, as `template.yaml` defines them.
const KEY: [&str; 2] = ["pk", "sk"];

/// A stored attribute value: the two types the processor writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attribute {
    S(String),
    N(i128),
}

/// Attribute name to value.
type Item = BTreeMap<String, Attribute>;

/// Requests answered so far, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub get_item: usize,
    pub put_item: usize,
    pub update_item: usize,
    pub delete_item: usize,
    /// Conditional writes refused because their condition was false, as DynamoDB refuses them.
    pub condition_failed: usize,
    /// Requests refused as malformed or beyond what this stand-in implements.
    pub refused: usize,
}

impl Counts {
    /// What was answered after `earlier` was taken.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            get_item: self.get_item - earlier.get_item,
            put_item: self.put_item - earlier.put_item,
            update_item: self.update_item - earlier.update_item,
            delete_item: self.delete_item - earlier.delete_item,
            condition_failed: self.condition_failed - earlier.condition_failed,
            refused: self.refused - earlier.refused,
        }
    }
}

/// The running stand-in; it stops when dropped.
pub struct DynamoStandIn {
    served: Served,
    table: Arc<Mutex<Table>>,
}

impl DynamoStandIn {
    /// Serves the empty table `table`, answering each DynamoDB request after `latency`, and relays
    /// every other request to `upstream` (the local AWS, on 127.0.0.1).
    pub async fn start(table: &str, latency: Duration, upstream: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            upstream.starts_with("http://127.0.0.1:"),
            "the stand-in relays only to a local AWS on 127.0.0.1, not {upstream}"
        );
        let state = Arc::new(Mutex::new(Table {
            name: table.to_owned(),
            items: HashMap::new(),
            counts: Counts::default(),
            refusals: Vec::new(),
        }));
        let client = reqwest::Client::builder().no_proxy().build()?;
        let upstream = upstream.to_owned();
        let shared = Arc::clone(&state);
        let app = axum::Router::new().fallback(move |request: Request| {
            let (table, client, upstream) = (Arc::clone(&shared), client.clone(), upstream.clone());
            async move { answer(&table, latency, &client, &upstream, request).await }
        });
        let (listener, port) = bind().await;
        Ok(Self {
            served: serve(listener, port, app),
            table: state,
        })
    }

    /// `http://127.0.0.1:<port>`, the endpoint to give the AWS SDK.
    pub fn base_url(&self) -> &str {
        &self.served.base_url
    }

    /// Requests answered so far.
    pub fn counts(&self) -> Counts {
        lock(&self.table).counts
    }

    /// Why each refused request was refused, in order.
    pub fn refusals(&self) -> Vec<String> {
        lock(&self.table).refusals.clone()
    }
}

/// Answers a DynamoDB request after `latency`, or relays any other request to `upstream`.
async fn answer(
    table: &Arc<Mutex<Table>>,
    latency: Duration,
    client: &reqwest::Client,
    upstream: &str,
    request: Request,
) -> Response {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|target| target.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .map(str::to_owned);
    let Some(operation) = operation else {
        return relay(client, upstream, request).await;
    };
    let body = axum::body::to_bytes(request.into_body(), usize::MAX).await;
    // The service's time to answer. Each request waits it out on its own, so concurrent requests
    // overlap as they do in DynamoDB; the table is locked only to apply the request.
    tokio::time::sleep(latency).await;
    let fields = body
        .map_err(|e| Failure::Validation(format!("could not read the request body: {e}")))
        .and_then(|body| {
            serde_json::from_slice::<Map<String, Value>>(&body).map_err(|e| {
                Failure::Validation(format!("the request body is not a JSON object: {e}"))
            })
        });
    let outcome = fields.and_then(|fields| lock(table).apply(&operation, fields));
    let (status, body) = match outcome {
        Ok(body) => (StatusCode::OK, body),
        Err(failure) => (StatusCode::BAD_REQUEST, failure.body()),
    };
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

/// Why a request was not applied; each is answered as DynamoDB answers it.
#[derive(Debug)]
enum Failure {
    /// `ConditionalCheckFailedException`, with the item as it was when the request asked for it.
    ConditionFailed(Option<Item>),
    /// `ResourceNotFoundException`: another table.
    NotFound(String),
    /// `ValidationException`: malformed, or beyond what this stand-in implements.
    Validation(String),
}

impl Failure {
    /// The error body of the JSON 1.0 protocol (the SDK reads the error code from `__type`).
    fn body(&self) -> Value {
        match self {
            Self::ConditionFailed(old) => {
                let mut body = json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
                    "message": "The conditional request failed",
                });
                if let Some(old) = old {
                    body["Item"] = item_json(old);
                }
                body
            }
            Self::NotFound(message) => json!({
                "__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                "message": message,
            }),
            Self::Validation(message) => json!({
                "__type": "com.amazon.coral.validate#ValidationException",
                "message": message,
            }),
        }
    }
}

fn unsupported(what: impl std::fmt::Display) -> Failure {
    Failure::Validation(format!("{what} is not supported by the DynamoDB stand-in"))
}

/// The one table and what was answered.
struct Table {
    name: String,
    items: HashMap<(String, String), Item>,
    counts: Counts,
    refusals: Vec<String>,
}

impl Table {
    /// Applies one request and counts its outcome.
    fn apply(&mut self, operation: &str, fields: Map<String, Value>) -> Result<Value, Failure> {
        let mut request = Fields(fields);
        let outcome = match operation {
            "GetItem" => self.get_item(&mut request),
            "PutItem" => self.put_item(&mut request),
            "UpdateItem" => self.update_item(&mut request),
            "DeleteItem" => self.delete_item(&mut request),
            other => Err(unsupported(format!("the operation {other}"))),
        };
        match &outcome {
            Ok(_) => {}
            Err(Failure::ConditionFailed(_)) => self.counts.condition_failed += 1,
            Err(Failure::NotFound(message) | Failure::Validation(message)) => {
                self.counts.refused += 1;
                self.refusals.push(format!("{operation}: {message}"));
            }
        }
        outcome
    }

    fn check_table(&self, request: &mut Fields) -> Result<(), Failure> {
        let name = request.required_str("TableName")?;
        if name == self.name {
            Ok(())
        } else {
            Err(Failure::NotFound(format!(
                "Requested resource not found: Table: {name} not found"
            )))
        }
    }

    fn get_item(&mut self, request: &mut Fields) -> Result<Value, Failure> {
        self.check_table(request)?;
        let key = key(request.required_map("Key")?)?;
        request.done()?;
        self.counts.get_item += 1;
        Ok(match self.items.get(&key) {
            Some(item) => json!({ "Item": item_json(item) }),
            None => json!({}),
        })
    }

    fn put_item(&mut self, request: &mut Fields) -> Result<Value, Failure> {
        self.check_table(request)?;
        let item = item(request.required_map("Item")?)?;
        let key = (key_part(&item, KEY[0])?, key_part(&item, KEY[1])?);
        let mut placeholders = Placeholders::take(request)?;
        let condition = request
            .optional_str("ConditionExpression")?
            .map(|expression| parse_condition(&expression, &mut placeholders))
            .transpose()?;
        let return_old = return_old_on_failure(request)?;
        placeholders.all_used()?;
        request.done()?;
        check(condition.as_ref(), self.items.get(&key), return_old)?;
        self.items.insert(key, item);
        self.counts.put_item += 1;
        Ok(json!({}))
    }

    fn update_item(&mut self, request: &mut Fields) -> Result<Value, Failure> {
        self.check_table(request)?;
        let key = key(request.required_map("Key")?)?;
        let mut placeholders = Placeholders::take(request)?;
        let update = parse_update(
            &request.required_str("UpdateExpression")?,
            &mut placeholders,
        )?;
        let condition = request
            .optional_str("ConditionExpression")?
            .map(|expression| parse_condition(&expression, &mut placeholders))
            .transpose()?;
        let return_old = return_old_on_failure(request)?;
        placeholders.all_used()?;
        request.done()?;
        check(condition.as_ref(), self.items.get(&key), return_old)?;
        // Like DynamoDB, an update of a missing item creates it.
        let item = self.items.entry(key.clone()).or_insert_with(|| {
            Item::from([
                (KEY[0].to_owned(), Attribute::S(key.0)),
                (KEY[1].to_owned(), Attribute::S(key.1)),
            ])
        });
        for (name, value) in update.set {
            item.insert(name, value);
        }
        for name in update.remove {
            item.remove(&name);
        }
        self.counts.update_item += 1;
        Ok(json!({}))
    }

    fn delete_item(&mut self, request: &mut Fields) -> Result<Value, Failure> {
        self.check_table(request)?;
        let key = key(request.required_map("Key")?)?;
        request.done()?;
        self.items.remove(&key);
        self.counts.delete_item += 1;
        Ok(json!({}))
    }
}

/// Refuses the write when its condition does not hold on the item as it is (an absent item has
/// no attributes).
fn check(
    condition: Option<&Condition>,
    old: Option<&Item>,
    return_old: bool,
) -> Result<(), Failure> {
    let empty = Item::new();
    match condition {
        Some(condition) if !condition.holds(old.unwrap_or(&empty)) => Err(
            Failure::ConditionFailed(old.filter(|_| return_old).cloned()),
        ),
        _ => Ok(()),
    }
}

/// `ReturnValuesOnConditionCheckFailure`: whether a refused write returns the item.
fn return_old_on_failure(request: &mut Fields) -> Result<bool, Failure> {
    match request
        .optional_str("ReturnValuesOnConditionCheckFailure")?
        .as_deref()
    {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(unsupported(format!(
            "ReturnValuesOnConditionCheckFailure {other}"
        ))),
    }
}

/// A request's fields. Each field read is taken out, so whatever is left when the request is
/// `done` is a field this stand-in would otherwise silently ignore.
struct Fields(Map<String, Value>);

impl Fields {
    fn optional_str(&mut self, name: &str) -> Result<Option<String>, Failure> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(Failure::Validation(format!(
                "{name} must be a string, not {other}"
            ))),
        }
    }

    fn required_str(&mut self, name: &str) -> Result<String, Failure> {
        self.optional_str(name)?
            .ok_or_else(|| Failure::Validation(format!("{name} is required")))
    }

    fn optional_map(&mut self, name: &str) -> Result<Map<String, Value>, Failure> {
        match self.0.remove(name) {
            None => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map),
            Some(other) => Err(Failure::Validation(format!(
                "{name} must be an object, not {other}"
            ))),
        }
    }

    fn required_map(&mut self, name: &str) -> Result<Map<String, Value>, Failure> {
        if self.0.contains_key(name) {
            self.optional_map(name)
        } else {
            Err(Failure::Validation(format!("{name} is required")))
        }
    }

    fn done(&self) -> Result<(), Failure> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(name) => Err(unsupported(format!("the request field {name}"))),
        }
    }
}

/// One attribute value in DynamoDB JSON: `{"S": "..."}` or `{"N": "<integer>"}`.
fn attribute(value: &Value) -> Result<Attribute, Failure> {
    let typed = value
        .as_object()
        .filter(|typed| typed.len() == 1)
        .and_then(|typed| typed.iter().next());
    match typed {
        Some((kind, Value::String(text))) if kind == "S" => Ok(Attribute::S(text.clone())),
        Some((kind, Value::String(text))) if kind == "N" => text
            .parse()
            .map(Attribute::N)
            .map_err(|_| unsupported(format!("the number {text:?} (only integers are)"))),
        _ => Err(unsupported(format!("the attribute value {value}"))),
    }
}

fn item(map: Map<String, Value>) -> Result<Item, Failure> {
    map.into_iter()
        .map(|(name, value)| Ok((name, attribute(&value)?)))
        .collect()
}

fn item_json(item: &Item) -> Value {
    item.iter()
        .map(|(name, value)| {
            let value = match value {
                Attribute::S(text) => json!({ "S": text }),
                Attribute::N(number) => json!({ "N": number.to_string() }),
            };
            (name.clone(), value)
        })
        .collect::<Map<_, _>>()
        .into()
}

fn key_part(item: &Item, name: &str) -> Result<String, Failure> {
    match item.get(name) {
        Some(Attribute::S(text)) if !text.is_empty() => Ok(text.clone()),
        _ => Err(Failure::Validation(format!(
            "the key attribute {name} must be a non-empty string"
        ))),
    }
}

/// A `Key`: exactly the table's two key attributes.
fn key(map: Map<String, Value>) -> Result<(String, String), Failure> {
    let key = item(map)?;
    if key.len() != KEY.len() {
        return Err(Failure::Validation(format!(
            "the key must hold exactly {KEY:?}"
        )));
    }
    Ok((key_part(&key, KEY[0])?, key_part(&key, KEY[1])?))
}

/// `ExpressionAttributeNames` and `ExpressionAttributeValues`. DynamoDB refuses a request that
/// supplies one its expressions do not use, and so does this stand-in.
struct Placeholders {
    names: Map<String, Value>,
    values: Map<String, Value>,
    used: BTreeSet<String>,
}

impl Placeholders {
    fn take(request: &mut Fields) -> Result<Self, Failure> {
        Ok(Self {
            names: request.optional_map("ExpressionAttributeNames")?,
            values: request.optional_map("ExpressionAttributeValues")?,
            used: BTreeSet::new(),
        })
    }

    /// The attribute name `#token` stands for.
    fn name(&mut self, token: &str) -> Result<String, Failure> {
        let name = self
            .names
            .get(token)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Failure::Validation(format!("{token} is not in ExpressionAttributeNames"))
            })?;
        self.used.insert(token.to_owned());
        Ok(name.to_owned())
    }

    /// The value `:token` stands for.
    fn value(&mut self, token: &str) -> Result<Attribute, Failure> {
        let value = self.values.get(token).ok_or_else(|| {
            Failure::Validation(format!("{token} is not in ExpressionAttributeValues"))
        })?;
        let value = attribute(value)?;
        self.used.insert(token.to_owned());
        Ok(value)
    }

    fn all_used(&self) -> Result<(), Failure> {
        match self
            .names
            .keys()
            .chain(self.values.keys())
            .find(|token| !self.used.contains(*token))
        {
            None => Ok(()),
            Some(token) => Err(Failure::Validation(format!(
                "{token} is supplied but not used in any expression"
            ))),
        }
    }
}

/// A condition expression, with its placeholders resolved.
#[derive(Debug)]
enum Condition {
    Any(Vec<Condition>),
    All(Vec<Condition>),
    /// `attribute_not_exists(path)`.
    Absent(String),
    /// `operand = operand` or `operand < operand`.
    Compare(Operand, Ordering, Operand),
}

#[derive(Debug)]
enum Operand {
    Attribute(String),
    Value(Attribute),
}

impl Condition {
    fn holds(&self, item: &Item) -> bool {
        match self {
            Self::Any(conditions) => conditions.iter().any(|c| c.holds(item)),
            Self::All(conditions) => conditions.iter().all(|c| c.holds(item)),
            Self::Absent(name) => !item.contains_key(name),
            Self::Compare(left, expected, right) => {
                let value = |operand: &'_ Operand| match operand {
                    Operand::Attribute(name) => item.get(name).cloned(),
                    Operand::Value(value) => Some(value.clone()),
                };
                // As in DynamoDB, a missing attribute or a type mismatch makes the comparison false.
                let ordering = match (value(left), value(right)) {
                    (Some(Attribute::S(a)), Some(Attribute::S(b))) => a.cmp(&b),
                    (Some(Attribute::N(a)), Some(Attribute::N(b))) => a.cmp(&b),
                    _ => return false,
                };
                ordering == *expected
            }
        }
    }
}

/// `SET path = :value, ...` and `REMOVE path, ...`.
#[derive(Debug, Default)]
struct Update {
    set: Vec<(String, Attribute)>,
    remove: Vec<String>,
}

fn parse_condition(
    expression: &str,
    placeholders: &mut Placeholders,
) -> Result<Condition, Failure> {
    let mut parser = Parser::new(expression, placeholders)?;
    let condition = parser.any()?;
    parser.end()?;
    Ok(condition)
}

fn parse_update(expression: &str, placeholders: &mut Placeholders) -> Result<Update, Failure> {
    let mut parser = Parser::new(expression, placeholders)?;
    let update = parser.update()?;
    parser.end()?;
    Ok(update)
}

/// Splits an expression into words (`pk`, `#name`, `:value`, `AND`), comparators and `(),`.
fn tokens(expression: &str) -> Result<Vec<String>, Failure> {
    fn word(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_'
    }
    fn comparator(c: char) -> bool {
        "<>=!".contains(c)
    }
    fn alone(_: char) -> bool {
        false
    }
    let mut tokens = Vec::new();
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        let continues: fn(char) -> bool = if word(c) || c == '#' || c == ':' {
            word
        } else if comparator(c) {
            comparator
        } else if "(),".contains(c) {
            alone
        } else if c.is_whitespace() {
            continue;
        } else {
            return Err(unsupported(format!("{c:?} in {expression:?}")));
        };
        let mut token = c.to_string();
        while let Some(next) = chars.next_if(|&next| continues(next)) {
            token.push(next);
        }
        tokens.push(token);
    }
    Ok(tokens)
}

/// A recursive-descent parser for the expression subset the processor uses.
struct Parser<'a> {
    expression: &'a str,
    tokens: Vec<String>,
    at: usize,
    placeholders: &'a mut Placeholders,
}

impl<'a> Parser<'a> {
    fn new(expression: &'a str, placeholders: &'a mut Placeholders) -> Result<Self, Failure> {
        Ok(Self {
            expression,
            tokens: tokens(expression)?,
            at: 0,
            placeholders,
        })
    }

    fn peek(&self, ahead: usize) -> Option<&str> {
        self.tokens.get(self.at + ahead).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    /// Whether the next token is the keyword `word` (keywords are case-insensitive).
    fn keyword(&self, word: &str) -> bool {
        self.peek(0).is_some_and(|t| t.eq_ignore_ascii_case(word))
    }

    /// The error for the token just taken (or the end of the expression).
    fn refuse(&self, found: Option<&str>) -> Failure {
        match found {
            Some(token) => unsupported(format!("{token:?} in {:?}", self.expression)),
            None => Failure::Validation(format!("{:?} ends too early", self.expression)),
        }
    }

    fn require(&mut self, expected: &str) -> Result<(), Failure> {
        match self.next() {
            Some(token) if token == expected => Ok(()),
            other => Err(self.refuse(other.as_deref())),
        }
    }

    fn end(&mut self) -> Result<(), Failure> {
        match self.next() {
            None => Ok(()),
            Some(token) => Err(self.refuse(Some(&token))),
        }
    }

    /// A top-level attribute name: `#placeholder` or a plain name (no nested paths, no keywords).
    fn path(&mut self) -> Result<String, Failure> {
        let plain = |token: &str| {
            token.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && ![
                    "AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE",
                ]
                .iter()
                .any(|keyword| token.eq_ignore_ascii_case(keyword))
        };
        match self.next() {
            Some(token) if token.starts_with('#') => self.placeholders.name(&token),
            Some(token) if plain(&token) && self.peek(0) != Some("(") => Ok(token),
            other => Err(self.refuse(other.as_deref())),
        }
    }

    /// `:placeholder`.
    fn value(&mut self) -> Result<Attribute, Failure> {
        match self.next() {
            Some(token) if token.starts_with(':') => self.placeholders.value(&token),
            other => Err(self.refuse(other.as_deref())),
        }
    }

    /// `all (OR all)*`.
    fn any(&mut self) -> Result<Condition, Failure> {
        let mut any = vec![self.all()?];
        while self.keyword("OR") {
            self.at += 1;
            any.push(self.all()?);
        }
        Ok(Condition::Any(any))
    }

    /// `term (AND term)*`.
    fn all(&mut self) -> Result<Condition, Failure> {
        let mut all = vec![self.term()?];
        while self.keyword("AND") {
            self.at += 1;
            all.push(self.term()?);
        }
        Ok(Condition::All(all))
    }

    /// `( any )`, `attribute_not_exists(path)`, or `operand (= | <) operand`.
    fn term(&mut self) -> Result<Condition, Failure> {
        if self.peek(0) == Some("(") {
            self.at += 1;
            let inner = self.any()?;
            self.require(")")?;
            return Ok(inner);
        }
        if self.peek(0) == Some("attribute_not_exists") && self.peek(1) == Some("(") {
            self.at += 2;
            let name = self.path()?;
            self.require(")")?;
            return Ok(Condition::Absent(name));
        }
        let left = self.operand()?;
        let comparator = match self.next().as_deref() {
            Some("=") => Ordering::Equal,
            Some("<") => Ordering::Less,
            other => return Err(self.refuse(other)),
        };
        Ok(Condition::Compare(left, comparator, self.operand()?))
    }

    fn operand(&mut self) -> Result<Operand, Failure> {
        if self.peek(0).is_some_and(|t| t.starts_with(':')) {
            Ok(Operand::Value(self.value()?))
        } else {
            Ok(Operand::Attribute(self.path()?))
        }
    }

    /// One or both of `SET path = :value, ...` and `REMOVE path, ...`, each at most once, each
    /// attribute named once, never a key attribute (DynamoDB's rules).
    fn update(&mut self) -> Result<Update, Failure> {
        let mut update = Update::default();
        let mut clauses = BTreeSet::new();
        let mut named = BTreeSet::new();
        while let Some(clause) = self.next() {
            let clause = clause.to_ascii_uppercase();
            if clause != "SET" && clause != "REMOVE" {
                return Err(self.refuse(Some(&clause)));
            }
            if !clauses.insert(clause.clone()) {
                return Err(Failure::Validation(format!(
                    "{clause} appears twice in {:?}",
                    self.expression
                )));
            }
            loop {
                let name = self.path()?;
                if KEY.contains(&name.as_str()) || !named.insert(name.clone()) {
                    return Err(Failure::Validation(format!(
                        "{name} is a key attribute or named twice in {:?}",
                        self.expression
                    )));
                }
                if clause == "SET" {
                    self.require("=")?;
                    update.set.push((name, self.value()?));
                } else {
                    update.remove.push(name);
                }
                if self.peek(0) != Some(",") {
                    break;
                }
                self.at += 1;
            }
        }
        if clauses.is_empty() {
            return Err(Failure::Validation("the update expression is empty".into()));
        }
        Ok(update)
    }
}
