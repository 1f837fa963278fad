//! `PATCH /api/v2/conversations/{conversationId}/participants/{participantId}/attributes`
//! (ConversationsApi.patchConversationParticipantAttributes), the call the relay makes.
//!
//! It needs a bearer token this server issued that has neither expired nor been revoked (else
//! 401), `Content-Type: application/json` and exactly `{"attributes": {string: string}}` (else
//! 400). It answers `202 Accepted` with no body, which is what Genesys' API definition declares for
//! this operation. Failures can be scripted per PATCH, and a PATCH held on its way in.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::requests::{authorized, json_body};
use super::responses::{scripted, with_api_headers, Answer};
use super::{lock, Inner, Shared};

/// A PATCH held on its way in ([`super::FakeGenesys::hold_next_patch`]): it is neither checked nor
/// recorded until released (or until this is dropped), as a request slow on the network would be.
pub struct HeldPatch {
    arrived: Option<oneshot::Receiver<()>>,
    release: oneshot::Sender<()>,
}

impl HeldPatch {
    /// Waits until the held PATCH has reached the fake, so the test knows it is in flight before
    /// sending the ones meant to overtake it.
    pub async fn arrived(&mut self) {
        if let Some(arrived) = self.arrived.take() {
            let _ = arrived.await;
        }
    }

    /// Lets the PATCH through: it is handled (checked, recorded, answered) now.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// The fake's side of a [`HeldPatch`].
pub(super) struct Gate {
    arrived: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// Queues a gate for the next PATCH that is not held yet, and hands the test its handle.
pub(super) fn hold_next(inner: &mut Inner) -> HeldPatch {
    let (arrived_tx, arrived_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    inner.gates.push_back(Gate {
        arrived: arrived_tx,
        release: release_rx,
    });
    HeldPatch {
        arrived: Some(arrived_rx),
        release: release_tx,
    }
}

/// One PATCH the fake accepted, as the test checks what reached Genesys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// The conversation id from the path.
    pub conversation_id: String,
    /// The participant id from the path.
    pub participant_id: String,
    /// The attributes from the body.
    pub attributes: BTreeMap<String, String>,
    /// The bearer token it was sent with.
    pub token: String,
}

/// The body of the PATCH: Genesys' `ParticipantAttributes` model (`attributes`, a map of strings).
/// The model marks `attributes` optional; the fake requires it, since a PATCH without it changes
/// nothing and means the client built the wrong body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantAttributes {
    attributes: BTreeMap<String, String>,
}

/// `PATCH .../participants/{participantId}/attributes`.
pub(super) async fn patch_attributes(
    State(shared): State<Shared>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let gate = lock(&shared).gates.pop_front();
    if let Some(gate) = gate {
        let _ = gate.arrived.send(());
        // A dropped handle lets the PATCH through too.
        let _ = gate.release.await;
    }
    let mut inner = lock(&shared);
    inner.requests += 1;
    inner.patch_requests += 1;
    if let Some(reply) = inner.script.pop_front() {
        return Ok(scripted(&mut inner, reply));
    }
    let token = authorized(&mut inner, &headers)?;
    let ParticipantAttributes { attributes } = json_body(&mut inner, &headers, &body)?;
    inner.patches.push(Patch {
        conversation_id,
        participant_id,
        attributes,
        token,
    });
    Ok(with_api_headers(
        &mut inner,
        StatusCode::ACCEPTED.into_response(),
    ))
}
