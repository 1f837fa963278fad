//! Fake Genesys Cloud: the login service and the Platform API on one local port.
//!
//! It checks the real request shapes (the Genesys Cloud Platform API) and answers like Genesys,
//! one module per API area:
//! - `login`: `POST /oauth/token`, the client credentials grant.
//! - `conversations`: the participant attributes PATCH the relay makes.
//! - `organization`: `GET /api/v2/organizations/me`, whose id names the EventBridge partner
//!   event source.
//! - `integrations` and `integration_config`: the integrations API the CLI's setup uses.
//! - `routing` (wrap-up codes) and `outbound` (contacts): the directories the relay reads.
//! - `oauth_clients` and `messaging`: regenerating an OAuth client's secret and updating an Open
//!   Messaging integration's webhook token, which credential rotation uses.
//!
//! Request bodies and query strings are read into serde models of the Platform API's request
//! types (`requests`); other paths get 404 and other methods 405, with Genesys' error JSON
//! (`message`, `code`, `status`), and every answer carries `ININ-Correlation-Id`, API answers also
//! `inin-ratelimit-*` (`responses`). Every authenticated call other than the PATCH is recorded
//! ([`FakeGenesys::integration_calls`]).
//!
//! Failures can be scripted per PATCH ([`FakeGenesys::script_patch`]) and per token request
//! ([`FakeGenesys::script_token`]); the next PATCH can be held on its way in until the test lets
//! it through ([`FakeGenesys::hold_next_patch`]), so it lands after later ones whatever the
//! machine's load; tokens can be expired at once ([`FakeGenesys::expire_tokens`]) and the client
//! secret rotated ([`FakeGenesys::set_client_secret`]). Integrations can be seeded
//! ([`FakeGenesys::add_integration`]) and a concurrent edit of a configuration simulated
//! ([`FakeGenesys::race_config_updates`]). Every answer can be made to wait as a distant service
//! would ([`FakeGenesys::set_latency`]). The server stops when the value is dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::{get, patch, post};
use axum::Router;
use serde_json::Value;

use super::server::{self, lock, Latency, Served};

mod conversations;
mod integration_config;
mod integrations;
mod login;
mod messaging;
mod oauth_clients;
mod organization;
mod outbound;
mod requests;
mod responses;
mod routing;

pub use conversations::{HeldPatch, Patch};
pub use integration_config::IntegrationConfig;
pub use integrations::{Integration, EVENTBRIDGE_TYPE};
pub use organization::ORG_ID;
pub use requests::IntegrationCall;
pub use responses::Reply;
pub use routing::WrapupCode;

use responses::only;

/// What the fake knows and has seen, shared by its handlers and the test's handle.
struct Inner {
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    token_delay: Duration,
    /// Issued tokens still honoured, with their expiry.
    valid_tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    token_requests: usize,
    patch_requests: usize,
    requests: usize,
    script: VecDeque<Reply>,
    token_script: VecDeque<Reply>,
    gates: VecDeque<conversations::Gate>,
    patches: Vec<Patch>,
    correlation: u64,
    port: u16,
    integrations: Vec<Integration>,
    integration_calls: Vec<IntegrationCall>,
    integrations_created: u64,
    config_races: usize,
    wrapup_codes: Vec<WrapupCode>,
    contacts: HashMap<(String, String), outbound::Columns>,
    /// OAuth clients besides the one given at start, by id (their secrets).
    other_clients: HashMap<String, String>,
    secrets_regenerated: u64,
    /// Open Messaging integrations, by id (the token their webhooks are signed with).
    open_integrations: HashMap<String, String>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake Genesys Cloud on 127.0.0.1, so tests and the local stack exercise the relay's
/// real Genesys client end to end; stopped when dropped.
pub struct FakeGenesys {
    shared: Shared,
    latency: Latency,
    served: Served,
}

impl FakeGenesys {
    /// Starts a server on a free port (so tests can run in parallel) that knows one OAuth client
    /// and issues tokens valid for `token_lifetime_secs`.
    pub async fn start(client_id: &str, client_secret: &str, token_lifetime_secs: u64) -> Self {
        let (listener, port) = server::bind().await;
        let shared: Shared = Arc::new(Mutex::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            lifetime: Duration::from_secs(token_lifetime_secs),
            token_delay: Duration::ZERO,
            valid_tokens: HashMap::new(),
            tokens_issued: 0,
            token_requests: 0,
            patch_requests: 0,
            requests: 0,
            script: VecDeque::new(),
            token_script: VecDeque::new(),
            gates: VecDeque::new(),
            patches: Vec::new(),
            correlation: 0,
            port,
            integrations: Vec::new(),
            integration_calls: Vec::new(),
            integrations_created: 0,
            config_races: 0,
            wrapup_codes: Vec::new(),
            contacts: HashMap::new(),
            other_clients: HashMap::new(),
            secrets_regenerated: 0,
            open_integrations: HashMap::new(),
        }));
        let latency = Latency::default();
        let app = latency.apply(routes()).with_state(Arc::clone(&shared));
        Self {
            shared,
            latency,
            served: server::serve(listener, port, app),
        }
    }

    /// Base URL of both the login service and the API, e.g. `http://127.0.0.1:40123`, for
    /// clients configured by URL.
    pub fn base_url(&self) -> String {
        self.served.base_url.clone()
    }

    /// Endpoints aiming a Genesys client at this server instead of a Genesys region.
    pub fn endpoints(&self) -> genesys_relay::config::GenesysEndpoints {
        genesys_relay::config::GenesysEndpoints::local(&self.served.base_url)
    }

    /// Queues answers for the next PATCHes, one each, before normal handling, to test how the
    /// relay classifies Genesys' failures.
    pub fn script_patch(&self, replies: Vec<Reply>) {
        lock(&self.shared).script.extend(replies);
    }

    /// Holds the next PATCH that arrives (after those already held) until the returned handle
    /// releases it, so a test can make it land after PATCHes sent later, every run.
    pub fn hold_next_patch(&self) -> HeldPatch {
        conversations::hold_next(&mut lock(&self.shared))
    }

    /// Queues answers for the next token requests, one each, before normal handling, to test a
    /// login outage or throttling.
    pub fn script_token(&self, replies: Vec<Reply>) {
        lock(&self.shared).token_script.extend(replies);
    }

    /// Makes every token issued so far invalid, as if they all expired now, to test the client's
    /// renewal on 401.
    pub fn expire_tokens(&self) {
        lock(&self.shared).valid_tokens.clear();
    }

    /// Rotates the OAuth client secret: only the new one is accepted from now on, as after an
    /// administrator's rotation.
    pub fn set_client_secret(&self, secret: &str) {
        lock(&self.shared).client_secret = secret.to_owned();
    }

    /// Adds another OAuth client (the standby one of a rotation, or an admin client).
    pub fn add_client(&self, client_id: &str, client_secret: &str) {
        lock(&self.shared)
            .other_clients
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    /// The secret a client has now (regenerated ones included).
    pub fn client_secret_of(&self, client_id: &str) -> Option<String> {
        let inner = lock(&self.shared);
        if client_id == inner.client_id {
            return Some(inner.client_secret.clone());
        }
        inner.other_clients.get(client_id).cloned()
    }

    /// Adds an Open Messaging integration whose webhooks are signed with `token`.
    pub fn add_open_integration(&self, integration_id: &str, token: &str) {
        lock(&self.shared)
            .open_integrations
            .insert(integration_id.to_owned(), token.to_owned());
    }

    /// The token an Open Messaging integration signs its webhooks with now.
    pub fn open_integration_token(&self, integration_id: &str) -> Option<String> {
        lock(&self.shared)
            .open_integrations
            .get(integration_id)
            .cloned()
    }

    /// Delays every token answer, so concurrent callers surely overlap a token request.
    pub fn set_token_delay(&self, delay: Duration) {
        lock(&self.shared).token_delay = delay;
    }

    /// Makes every answer (token, API, refusal or 404) wait `latency` first, as a service across a
    /// network would; it adds to [`FakeGenesys::set_token_delay`]. `Duration::ZERO` (the default)
    /// answers at once.
    pub fn set_latency(&self, latency: Duration) {
        self.latency.set(latency);
    }

    /// How many tokens were issued, to check that clients reuse their token.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared).tokens_issued
    }

    /// How many requests reached `/oauth/token`, refused ones included, to check how often a
    /// client asks.
    pub fn token_requests(&self) -> usize {
        lock(&self.shared).token_requests
    }

    /// How many requests reached the attributes path, refused and scripted ones included, to
    /// check retries.
    pub fn patch_requests(&self) -> usize {
        lock(&self.shared).patch_requests
    }

    /// The PATCHes accepted, in order: what Genesys ended up with.
    pub fn patches(&self) -> Vec<Patch> {
        lock(&self.shared).patches.clone()
    }

    /// How many requests of any kind reached the server, to check that a refusal made none.
    pub fn requests(&self) -> usize {
        lock(&self.shared).requests
    }

    /// The organization id `GET /api/v2/organizations/me` answers, which names the partner event
    /// source.
    pub fn org_id(&self) -> &'static str {
        ORG_ID
    }

    /// The integrations held, in creation order, to check what a setup left behind.
    pub fn integrations(&self) -> Vec<Integration> {
        lock(&self.shared).integrations.clone()
    }

    /// The authenticated organization, integrations and directory requests, in order, to check
    /// what a client asked for.
    pub fn integration_calls(&self) -> Vec<IntegrationCall> {
        lock(&self.shared).integration_calls.clone()
    }

    /// Adds an integration as if an administrator had created it (disabled, empty configuration),
    /// to test a setup that finds one; returns its id.
    pub fn add_integration(&self, integration_type: &str, name: &str) -> String {
        integrations::new_integration(&mut lock(&self.shared), integration_type, name).id
    }

    /// Adds a wrap-up code as an administrator would (organization codes have UUID ids), for rules
    /// that name it.
    pub fn add_wrapup_code(&self, id: &str, name: &str) {
        lock(&self.shared).wrapup_codes.push(WrapupCode {
            id: id.to_owned(),
            name: name.to_owned(),
        });
    }

    /// Deletes the wrap-up code with this id, to test a rule naming a code that is gone.
    pub fn remove_wrapup_code(&self, id: &str) {
        lock(&self.shared).wrapup_codes.retain(|c| c.id != id);
    }

    /// Puts a contact with these columns into a contact list, for templates that read them; a
    /// non-object `columns` leaves the contact without columns.
    pub fn add_contact(&self, contact_list_id: &str, contact_id: &str, columns: Value) {
        let columns = match columns {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        lock(&self.shared)
            .contacts
            .insert((contact_list_id.to_owned(), contact_id.to_owned()), columns);
    }

    /// The authenticated requests whose path starts with `prefix`, e.g.
    /// `/api/v2/routing/wrapupcodes`, to check the calls of one API area.
    pub fn calls_to(&self, prefix: &str) -> Vec<IntegrationCall> {
        lock(&self.shared)
            .integration_calls
            .iter()
            .filter(|c| c.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Makes the next `count` configuration PUTs that name the current version lose a race: the
    /// version moves on as if someone else saved first, and the PUT gets 409.
    pub fn race_config_updates(&self, count: usize) {
        lock(&self.shared).config_races += count;
    }
}

/// Every path the fake serves, with the methods each takes; other methods get 405, other paths
/// 404.
fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/oauth/token",
            post(login::token).fallback(login::wrong_method),
        )
        .route(
            "/api/v2/conversations/{conversation_id}/participants/{participant_id}/attributes",
            only(patch(conversations::patch_attributes)),
        )
        .route("/api/v2/organizations/me", only(get(organization::me)))
        .route(
            "/api/v2/integrations",
            only(get(integrations::list).post(integrations::create)),
        )
        .route(
            "/api/v2/integrations/{integration_id}",
            only(get(integrations::get_one).patch(integrations::update)),
        )
        .route(
            "/api/v2/integrations/{integration_id}/config/current",
            only(get(integration_config::current).put(integration_config::replace)),
        )
        .route(
            "/api/v2/routing/wrapupcodes",
            only(get(routing::wrapup_codes)),
        )
        .route(
            "/api/v2/outbound/contactlists/{contact_list_id}/contacts/{contact_id}",
            only(get(outbound::contact)),
        )
        .route(
            "/api/v2/oauth/clients/{client_id}/secret",
            only(post(oauth_clients::regenerate_secret)),
        )
        .route(
            "/api/v2/conversations/messaging/integrations/open/{integration_id}",
            only(patch(messaging::update_open)),
        )
        .fallback(responses::not_found)
}
