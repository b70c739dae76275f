//! Consent records and break-glass grants in the database: the current consent per common health
//! ID, its append-only history, and time-limited emergency grants. The rule itself is the pure
//! [`crate::disclosure::decide`].

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{CommonId, Registry, Tx, check_actor, get, lock_registry, now, require_common_id};
use crate::disclosure::{Access, ConsentPolicy, FacilityCode, decide, stricter};
use crate::{IndexError, RecordKey};

/// A patient's current consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub common_id: CommonId,
    pub policy: ConsentPolicy,
    pub recorded_at: String,
    pub recorded_by: String,
    pub reason: String,
}

/// A consent change made inside a transaction, for its audit event once that commits.
#[derive(Debug, Clone)]
pub(super) struct ConsentChange {
    pub common_id: CommonId,
    /// The consent before (`None`: none on record).
    pub old: Option<ConsentPolicy>,
    pub new: ConsentPolicy,
    pub actor: String,
    pub reason: String,
}

/// One change of a patient's consent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub id: i64,
    pub at: String,
    pub common_id: CommonId,
    pub policy: ConsentPolicy,
    pub actor: String,
    pub reason: String,
}

/// An emergency access grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakGlass {
    pub id: i64,
    pub at: String,
    pub common_id: CommonId,
    pub facility: String,
    pub user: String,
    pub reason: String,
    /// Seconds since the Unix epoch after which the grant no longer applies.
    pub expires_unix: i64,
}

/// What a user of one facility may see of one patient: the consent, and their active grant.
#[derive(Debug, Clone, PartialEq)]
pub struct Disclosure {
    pub viewer_facility: String,
    pub consent: Option<ConsentRecord>,
    pub break_glass: Option<BreakGlass>,
}

impl Disclosure {
    /// Whether (and why) records held by `holder` are shown.
    pub fn access(&self, holder: &str) -> Access {
        decide(
            self.consent.as_ref().map(|c| &c.policy),
            &self.viewer_facility,
            holder,
            self.break_glass.is_some(),
        )
    }
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn policy_at(r: &AnyRow, name: usize, list: usize) -> Result<ConsentPolicy, IndexError> {
    let facilities: Vec<String> = serde_json::from_str(&get::<String>(r, list)?)?;
    ConsentPolicy::from_parts(&get::<String>(r, name)?, &facilities)
}

fn break_glass_row(r: &AnyRow) -> Result<BreakGlass, IndexError> {
    Ok(BreakGlass {
        id: get(r, 0)?,
        at: get(r, 1)?,
        common_id: CommonId::parse(&get::<String>(r, 2)?)?,
        facility: get(r, 3)?,
        user: get(r, 4)?,
        reason: get(r, 5)?,
        expires_unix: get(r, 6)?,
    })
}

/// Replaces the consent of `common_id` and appends it to the history, inside `tx`. Returns the time.
async fn store_consent(
    tx: &mut Tx<'_>,
    common_id: &CommonId,
    policy: &ConsentPolicy,
    actor: &str,
    reason: &str,
) -> Result<String, IndexError> {
    let at = now();
    let facilities = serde_json::to_string(&policy.facilities())?;
    sqlx::query("DELETE FROM consents WHERE common_id = $1")
        .bind(common_id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(IndexError::db("replacing a consent"))?;
    sqlx::query(
        "INSERT INTO consents (common_id, policy, facilities, recorded_at, recorded_by, reason) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(common_id.as_str())
    .bind(policy.name())
    .bind(&facilities)
    .bind(&at)
    .bind(actor)
    .bind(reason)
    .execute(&mut **tx)
    .await
    .map_err(IndexError::db("storing a consent"))?;
    sqlx::query(
        "INSERT INTO consent_events (at, common_id, policy, facilities, actor, reason) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&at)
    .bind(common_id.as_str())
    .bind(policy.name())
    .bind(&facilities)
    .bind(actor)
    .bind(reason)
    .execute(&mut **tx)
    .await
    .map_err(IndexError::db("recording a consent change"))?;
    Ok(at)
}

/// The current consent of `common_id`, inside `tx`.
async fn consent_in(tx: &mut Tx<'_>, common_id: &CommonId) -> Result<Option<ConsentPolicy>, IndexError> {
    let row = sqlx::query("SELECT policy, facilities FROM consents WHERE common_id = $1")
        .bind(common_id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(IndexError::db("reading a consent"))?;
    row.map(|r| policy_at(&r, 0, 1)).transpose()
}

fn shown(p: Option<&ConsentPolicy>) -> String {
    p.map_or_else(|| "no consent on record".to_owned(), ToString::to_string)
}

/// `key` was moved (`how`: manual link, accepted review, auto-link) from `from` into `to`, in `tx`:
/// consent is kept per common ID, so `to`'s consent now covers the moved record too. It becomes the
/// [`stricter`] of the two, or a permissive `to` would show records the patient kept to `from`'s
/// facilities. `from` is `None` for a record that had no ID yet (enrollment's auto-link): it had no
/// consent on record, so `to` narrows to `OptOut` unless it already has no consent. When that
/// narrows `to` it is recorded as a consent change by `actor`; a result of no consent at all is
/// stored as `OptOut`, the same under `decide`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn join_consent(
    tx: &mut Tx<'_>,
    key: &RecordKey,
    from: Option<&CommonId>,
    to: &CommonId,
    how: &str,
    actor: &str,
    reason: &str,
) -> Result<Option<ConsentChange>, IndexError> {
    let had = match from {
        Some(from) => consent_in(tx, from).await?,
        None => None,
    };
    let target = consent_in(tx, to).await?;
    let merged = stricter(had.as_ref(), target.as_ref());
    if merged == target {
        return Ok(None);
    }
    let merged = merged.unwrap_or(ConsentPolicy::OptOut);
    let origin = match from {
        Some(from) => format!("from {from} ({})", shown(had.as_ref())),
        None => "(a new record, no consent on record)".to_owned(),
    };
    let why = format!(
        "{how} of {key} {origin} into {to} ({}): the stricter consent applies; {reason}",
        shown(target.as_ref()),
    );
    store_consent(tx, to, &merged, actor, &why).await?;
    tracing::warn!(common_id = %to, patient = %key, from = ?from.map(CommonId::as_str), policy = %merged, actor, "consent narrowed by a link");
    Ok(Some(ConsentChange {
        common_id: to.clone(),
        old: target,
        new: merged,
        actor: actor.into(),
        reason: why,
    }))
}

impl Registry {
    /// Records a patient's consent (replacing the current one) and appends it to the history.
    pub async fn set_consent(
        &self,
        common_id: &CommonId,
        policy: &ConsentPolicy,
        actor: &str,
        reason: &str,
    ) -> Result<ConsentRecord, IndexError> {
        check_actor(actor, reason)?;
        let _g = self.db.write_guard().await;
        let mut tx = self.db.begin_write().await.map_err(IndexError::db("starting a consent change"))?;
        // Serialised with links on PostgreSQL: a consent change racing a link could land on the ID
        // the patient just left, after the link had merged the old consent.
        lock_registry(&self.db, &mut tx).await?;
        require_common_id(&mut tx, common_id).await?;
        let old = consent_in(&mut tx, common_id).await?;
        let at = store_consent(&mut tx, common_id, policy, actor, reason).await?;
        tx.commit().await.map_err(IndexError::db("committing a consent change"))?;
        tracing::info!(common_id = %common_id, policy = %policy, actor, "consent recorded");
        let change = ConsentChange {
            common_id: common_id.clone(),
            old,
            new: policy.clone(),
            actor: actor.into(),
            reason: reason.into(),
        };
        self.audit.emit(super::audit::consent_event(&change)).await;
        Ok(ConsentRecord {
            common_id: common_id.clone(),
            policy: policy.clone(),
            recorded_at: at,
            recorded_by: actor.to_owned(),
            reason: reason.to_owned(),
        })
    }

    /// A patient's current consent (`None`: none recorded, nothing is shared).
    pub async fn consent(&self, common_id: &CommonId) -> Result<Option<ConsentRecord>, IndexError> {
        let row = sqlx::query(
            "SELECT policy, facilities, recorded_at, recorded_by, reason FROM consents WHERE common_id = $1",
        )
        .bind(common_id.as_str())
        .fetch_optional(&self.db.pool)
        .await
        .map_err(IndexError::db("reading a consent"))?;
        row.map(|r| {
            Ok(ConsentRecord {
                common_id: common_id.clone(),
                policy: policy_at(&r, 0, 1)?,
                recorded_at: get(&r, 2)?,
                recorded_by: get(&r, 3)?,
                reason: get(&r, 4)?,
            })
        })
        .transpose()
    }

    /// Every consent change of a patient, oldest first.
    pub async fn consent_history(&self, common_id: &CommonId) -> Result<Vec<ConsentEvent>, IndexError> {
        let rows = sqlx::query(
            "SELECT id, at, policy, facilities, actor, reason FROM consent_events WHERE common_id = $1 ORDER BY id",
        )
        .bind(common_id.as_str())
        .fetch_all(&self.db.pool)
        .await
        .map_err(IndexError::db("reading consent history"))?;
        rows.iter()
            .map(|r| {
                Ok(ConsentEvent {
                    id: get(r, 0)?,
                    at: get(r, 1)?,
                    common_id: common_id.clone(),
                    policy: policy_at(r, 2, 3)?,
                    actor: get(r, 4)?,
                    reason: get(r, 5)?,
                })
            })
            .collect()
    }

    /// Opens emergency access for `user` of `facility` to a patient for `minutes`. The reason is
    /// mandatory; the grant is kept for the audit.
    pub async fn break_glass(
        &self,
        common_id: &CommonId,
        facility: &str,
        user: &str,
        reason: &str,
        minutes: u32,
    ) -> Result<BreakGlass, IndexError> {
        check_actor(user, reason)?;
        let facility = FacilityCode::parse(facility)?;
        if minutes == 0 {
            return Err(IndexError::Invalid {
                what: "break-glass duration",
                value: "0".into(),
                reason: "must be at least one minute",
            });
        }
        let _g = self.db.write_guard().await;
        let mut tx = self.db.begin_write().await.map_err(IndexError::db("starting a break-glass grant"))?;
        require_common_id(&mut tx, common_id).await?;
        let row = sqlx::query(
            "INSERT INTO break_glass (at, common_id, facility_id, user_id, reason, expires_unix) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(now())
        .bind(common_id.as_str())
        .bind(facility.as_str())
        .bind(user)
        .bind(reason)
        .bind(unix_now() + i64::from(minutes) * 60)
        .fetch_one(&mut *tx)
        .await
        .map_err(IndexError::db("storing a break-glass grant"))?;
        let id: i64 = row.try_get(0).map_err(IndexError::db("reading a break-glass id"))?;
        tx.commit().await.map_err(IndexError::db("committing a break-glass grant"))?;
        tracing::warn!(common_id = %common_id, facility = %facility, user, reason, "break-glass access opened");
        self.break_glass_by_id(id).await
    }

    async fn break_glass_by_id(&self, id: i64) -> Result<BreakGlass, IndexError> {
        let row = sqlx::query(
            "SELECT id, at, common_id, facility_id, user_id, reason, expires_unix FROM break_glass WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.db.pool)
        .await
        .map_err(IndexError::db("reading a break-glass grant"))?;
        break_glass_row(&row)
    }

    /// The newest unexpired break-glass grant of `user` at `facility` for a patient.
    pub async fn active_break_glass(
        &self,
        common_id: &CommonId,
        facility: &str,
        user: &str,
    ) -> Result<Option<BreakGlass>, IndexError> {
        let row = sqlx::query(
            "SELECT id, at, common_id, facility_id, user_id, reason, expires_unix FROM break_glass \
             WHERE common_id = $1 AND facility_id = $2 AND user_id = $3 AND expires_unix > $4 ORDER BY id DESC LIMIT 1",
        )
        .bind(common_id.as_str())
        .bind(facility)
        .bind(user)
        .bind(unix_now())
        .fetch_optional(&self.db.pool)
        .await
        .map_err(IndexError::db("reading break-glass grants"))?;
        row.as_ref().map(break_glass_row).transpose()
    }

    /// Every break-glass grant for a patient, oldest first (for the audit).
    pub async fn break_glass_history(&self, common_id: &CommonId) -> Result<Vec<BreakGlass>, IndexError> {
        let rows = sqlx::query(
            "SELECT id, at, common_id, facility_id, user_id, reason, expires_unix FROM break_glass \
             WHERE common_id = $1 ORDER BY id",
        )
        .bind(common_id.as_str())
        .fetch_all(&self.db.pool)
        .await
        .map_err(IndexError::db("reading break-glass grants"))?;
        rows.iter().map(break_glass_row).collect()
    }

    /// What a user (`user` of `facility`) may see of a patient right now.
    pub async fn disclosure(
        &self,
        common_id: &CommonId,
        facility: &str,
        user: &str,
    ) -> Result<Disclosure, IndexError> {
        Ok(Disclosure {
            viewer_facility: facility.to_owned(),
            consent: self.consent(common_id).await?,
            break_glass: self.active_break_glass(common_id, facility, user).await?,
        })
    }
}
