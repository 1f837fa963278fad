//! A secret's versions and their staging labels: what the rotation protocol reads and moves, and
//! what readers that accept a credential during its overlap look at. Behind a narrow trait, with
//! Secrets Manager and an in-memory store, so the protocol's logic is tested in milliseconds and
//! its Secrets Manager calls against a local AWS.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;
use crate::state::StoreFuture;

/// The label of the version in use.
pub const CURRENT: &str = "AWSCURRENT";
/// The label of the version a rotation is bringing in.
pub const PENDING: &str = "AWSPENDING";
/// The label of the version in use before the last rotation.
pub const PREVIOUS: &str = "AWSPREVIOUS";

/// The most pages of versions read (Secrets Manager keeps at most about 100 versions).
const MAX_PAGES: usize = 10;

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its id (a rotation's `ClientRequestToken`).
    pub id: String,
    /// Its staging labels; none once it is deprecated.
    pub stages: Vec<String>,
    /// When it was created.
    pub created: SystemTime,
}

impl Version {
    /// Whether it carries `stage`.
    pub fn has(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s == stage)
    }
}

/// What a secret is, beyond its values.
#[derive(Debug, Clone, Default)]
pub struct Described {
    /// Every version, deprecated ones included, oldest first.
    pub versions: Vec<Version>,
    /// Its tags (the rotation strategy is chosen by one).
    pub tags: BTreeMap<String, String>,
    /// Whether rotation is turned on.
    pub rotation_enabled: bool,
    /// When it was last rotated.
    pub last_rotated: Option<SystemTime>,
    /// When it is next due.
    pub next_rotation: Option<SystemTime>,
}

impl Described {
    /// The version carrying `stage`.
    pub fn with_stage(&self, stage: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.has(stage))
    }

    /// The version `id`.
    pub fn version(&self, id: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.id == id)
    }

    /// A rotation started and not finished: the pending version is not the current one.
    pub fn half_rotated(&self) -> Option<&Version> {
        self.with_stage(PENDING).filter(|v| !v.has(CURRENT))
    }
}

/// The Secrets Manager operations on one secret's versions that rotation and overlapping reads
/// need.
pub trait SecretVersions: Send + Sync {
    /// The secret's versions, tags and rotation settings.
    fn describe<'a>(&'a self, secret: &'a str) -> StoreFuture<'a, Described>;

    /// The secret's versions alone, deprecated ones included, oldest first: all a reader of
    /// overlapping values needs (`secretsmanager:ListSecretVersionIds`).
    fn versions<'a>(&'a self, secret: &'a str) -> StoreFuture<'a, Vec<Version>>;

    /// The value of version `version`; `None` when it has none (a version a rotation created
    /// and never filled, or one that is gone).
    fn value<'a>(
        &'a self,
        secret: &'a str,
        version: &'a str,
    ) -> StoreFuture<'a, Option<SecretString>>;

    /// Stores `value` as version `token`, labelled pending. Storing the same value again under
    /// the same token is a no-op, as Secrets Manager makes it.
    fn put_pending<'a>(
        &'a self,
        secret: &'a str,
        token: &'a str,
        value: &'a SecretString,
    ) -> StoreFuture<'a, ()>;

    /// Makes version `token` current, taking the label from `from`; the previous label follows.
    fn promote<'a>(
        &'a self,
        secret: &'a str,
        token: &'a str,
        from: Option<&'a str>,
    ) -> StoreFuture<'a, ()>;
}

/// The versions of secrets in Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManagerVersions {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerVersions {
    /// Versions through `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

fn system_time(date: Option<&aws_sdk_secretsmanager::primitives::DateTime>) -> Option<SystemTime> {
    date.and_then(|d| SystemTime::try_from(*d).ok())
}

fn unavailable(what: &str, secret: &str, error: impl std::error::Error) -> Error {
    crate::aws::unavailable(&format!("{what} of secret {secret}"), error)
}

/// A missing secret is a deployment error (permanent); any other failure may pass.
fn failure<E, R>(what: &str, secret: &str, error: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        == Some("ResourceNotFoundException")
    {
        Error::permanent(format!("secret {secret} does not exist"))
    } else {
        unavailable(what, secret, error)
    }
}

impl SecretVersions for SecretsManagerVersions {
    fn describe<'a>(&'a self, secret: &'a str) -> StoreFuture<'a, Described> {
        Box::pin(async move {
            let described = self
                .client
                .describe_secret()
                .secret_id(secret)
                .send()
                .await
                .map_err(|e| failure("describe", secret, e))?;
            Ok(Described {
                versions: self.versions(secret).await?,
                tags: described
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                    .collect(),
                rotation_enabled: described.rotation_enabled().unwrap_or(false),
                last_rotated: system_time(described.last_rotated_date()),
                next_rotation: system_time(described.next_rotation_date()),
            })
        })
    }

    fn versions<'a>(&'a self, secret: &'a str) -> StoreFuture<'a, Vec<Version>> {
        Box::pin(async move {
            let mut versions = Vec::new();
            let mut next = None;
            for _ in 0..MAX_PAGES {
                let page = self
                    .client
                    .list_secret_version_ids()
                    .secret_id(secret)
                    .include_deprecated(true)
                    .set_next_token(next)
                    .send()
                    .await
                    .map_err(|e| failure("list the versions", secret, e))?;
                for entry in page.versions() {
                    versions.push(Version {
                        id: entry.version_id().unwrap_or_default().to_owned(),
                        stages: entry.version_stages().to_vec(),
                        created: system_time(entry.created_date())
                            .unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
                next = page
                    .next_token()
                    .filter(|t| !t.is_empty() && !page.versions().is_empty())
                    .map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
            versions.sort_by_key(|v| v.created);
            Ok(versions)
        })
    }

    fn value<'a>(
        &'a self,
        secret: &'a str,
        version: &'a str,
    ) -> StoreFuture<'a, Option<SecretString>> {
        Box::pin(async move {
            match self
                .client
                .get_secret_value()
                .secret_id(secret)
                .version_id(version)
                .send()
                .await
            {
                Ok(output) => Ok(output.secret_string.map(SecretString::from)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    Ok(None)
                }
                Err(e) => Err(unavailable("read a version", secret, e)),
            }
        })
    }

    fn put_pending<'a>(
        &'a self,
        secret: &'a str,
        token: &'a str,
        value: &'a SecretString,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .put_secret_value()
                .secret_id(secret)
                .client_request_token(token)
                .secret_string(value.expose_secret())
                .version_stages(PENDING)
                .send()
                .await
                .map_err(|e| unavailable("store the pending version", secret, e))?;
            Ok(())
        })
    }

    fn promote<'a>(
        &'a self,
        secret: &'a str,
        token: &'a str,
        from: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .update_secret_version_stage()
                .secret_id(secret)
                .version_stage(CURRENT)
                .move_to_version_id(token)
                .set_remove_from_version_id(from.map(str::to_owned))
                .send()
                .await
                .map_err(|e| unavailable("promote the pending version", secret, e))?;
            Ok(())
        })
    }
}

/// One secret's versions in memory, for tests of what is built on them.
#[derive(Debug, Default)]
pub struct MemoryVersions {
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    described: Described,
    values: BTreeMap<String, String>,
}

impl MemoryVersions {
    /// A secret whose current version `id` holds `value`, created at `at`, tagged with `tags`.
    pub fn new(id: &str, value: &str, at: SystemTime, tags: &[(&str, &str)]) -> Self {
        let versions = Self::default();
        {
            let mut state = versions.lock();
            state.described.rotation_enabled = true;
            state.described.tags = tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            state.described.versions.push(Version {
                id: id.to_owned(),
                stages: vec![CURRENT.to_owned()],
                created: at,
            });
            state.values.insert(id.to_owned(), value.to_owned());
        }
        versions
    }

    /// Labels a new, empty version `token` pending at `at`, as Secrets Manager does before it
    /// invokes the rotation function.
    pub fn start_rotation(&self, token: &str, at: SystemTime) {
        let mut state = self.lock();
        move_label(&mut state.described, PENDING, None);
        state.described.versions.push(Version {
            id: token.to_owned(),
            stages: vec![PENDING.to_owned()],
            created: at,
        });
    }

    /// The value version `id` holds.
    pub fn value_of(&self, id: &str) -> Option<String> {
        self.lock().values.get(id).cloned()
    }

    /// The versions now.
    pub fn snapshot(&self) -> Described {
        self.lock().described.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Takes `stage` off whichever version has it and puts it on `to`.
fn move_label(described: &mut Described, stage: &str, to: Option<&str>) {
    for version in &mut described.versions {
        version.stages.retain(|s| s != stage);
        if Some(version.id.as_str()) == to {
            version.stages.push(stage.to_owned());
        }
    }
}

impl SecretVersions for MemoryVersions {
    fn describe<'a>(&'a self, _secret: &'a str) -> StoreFuture<'a, Described> {
        let described = self.snapshot();
        Box::pin(std::future::ready(Ok(described)))
    }

    fn versions<'a>(&'a self, _secret: &'a str) -> StoreFuture<'a, Vec<Version>> {
        let versions = self.snapshot().versions;
        Box::pin(std::future::ready(Ok(versions)))
    }

    fn value<'a>(
        &'a self,
        _secret: &'a str,
        version: &'a str,
    ) -> StoreFuture<'a, Option<SecretString>> {
        let value = self.value_of(version).map(SecretString::from);
        Box::pin(std::future::ready(Ok(value)))
    }

    fn put_pending<'a>(
        &'a self,
        _secret: &'a str,
        token: &'a str,
        value: &'a SecretString,
    ) -> StoreFuture<'a, ()> {
        let mut state = self.lock();
        let result = match state.values.get(token) {
            Some(stored) if stored != value.expose_secret() => Err(Error::permanent(format!(
                "version {token} already holds another value"
            ))),
            Some(_) => Ok(()),
            None => {
                if state.described.version(token).is_none() {
                    let created = state
                        .described
                        .versions
                        .last()
                        .map_or(SystemTime::UNIX_EPOCH, |v| v.created);
                    state.described.versions.push(Version {
                        id: token.to_owned(),
                        stages: Vec::new(),
                        created,
                    });
                }
                move_label(&mut state.described, PENDING, Some(token));
                state
                    .values
                    .insert(token.to_owned(), value.expose_secret().to_owned());
                Ok(())
            }
        };
        Box::pin(std::future::ready(result))
    }

    fn promote<'a>(
        &'a self,
        _secret: &'a str,
        token: &'a str,
        from: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        let mut state = self.lock();
        let current = state.described.with_stage(CURRENT).map(|v| v.id.clone());
        let result = if current.as_deref() != from {
            Err(Error::permanent(format!(
                "{CURRENT} is not on version {}",
                from.unwrap_or("(none)")
            )))
        } else {
            if let Some(previous) = current.as_deref().filter(|c| *c != token) {
                let previous = previous.to_owned();
                move_label(&mut state.described, PREVIOUS, Some(&previous));
            }
            move_label(&mut state.described, CURRENT, Some(token));
            Ok(())
        };
        Box::pin(std::future::ready(result))
    }
}
