//! Common health IDs in the database: issuing them, linking each (facility, local patient ID) on
//! enrollment, the review queue, manual link and unlink by an admin, and the full history of links.
//!
//! The viewer calls [`Registry::resolve`] (common ID → local IDs) and [`Registry::find`] (local ID →
//! common ID).

mod audit;
pub mod common_id;
pub mod consent;
pub mod db;
pub mod decide;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

pub use audit::AUDIT_SOURCE;
pub use common_id::CommonId;
pub use consent::{BreakGlass, ConsentEvent, ConsentRecord, Disclosure};
pub use db::{Backend, Db};
pub use decide::{Candidate, Choice, Suggestion, choose};

use crate::matcher::{FieldWeight, Matcher, Prepared, TrainingReport};
use crate::{Demographics, IndexError, RecordKey};

/// The actor recorded for the matcher's own decisions.
pub const MATCHER_ACTOR: &str = "matcher";

/// Blocks bigger than this are not read when enrolling (a key shared by thousands says nothing).
const MAX_CANDIDATES_PER_KEY: i64 = 2000;

/// What enrollment did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The patient was linked to an existing common ID without review.
    AutoLinked { match_weight: f64 },
    /// A new common ID was issued; `review` items were queued for possible links.
    NewId { review: Vec<i64> },
    /// The patient was already enrolled: demographics were refreshed, the link left as it was.
    Updated,
}

/// The result of [`Registry::enroll`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub common_id: CommonId,
    pub outcome: Outcome,
}

/// One entry of the link history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkEvent {
    pub id: i64,
    pub at: String,
    pub key: RecordKey,
    /// `link` or `unlink`.
    pub action: String,
    pub common_id: CommonId,
    /// `new` (a fresh ID), `auto` (matcher), `review` (admin accepted a suggestion), `manual`, `split`.
    pub method: String,
    pub actor: String,
    pub reason: String,
    pub match_weight: Option<f64>,
    pub model_id: Option<i64>,
}

/// A suggested link waiting for an admin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: i64,
    pub created_at: String,
    pub key: RecordKey,
    pub candidate_common_id: CommonId,
    pub candidate: RecordKey,
    pub match_weight: f64,
    pub explanation: Vec<FieldWeight>,
    pub model_id: i64,
    /// `open`, `linked`, `rejected`, `superseded` (another item of the patient was accepted).
    pub status: String,
}

/// The linkage registry.
#[derive(Clone)]
pub struct Registry {
    db: Db,
    audit: kizuna_audit::emitter::AuditEmitter,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn check_actor(actor: &str, reason: &str) -> Result<(), IndexError> {
    if actor.trim().is_empty() {
        return Err(IndexError::Invalid { what: "actor", value: actor.into(), reason: "is empty" });
    }
    if reason.trim().is_empty() {
        return Err(IndexError::Invalid { what: "reason", value: reason.into(), reason: "is empty" });
    }
    Ok(())
}

type Tx<'a> = Transaction<'a, Any>;

/// On PostgreSQL, waits for the registry's write lock, held until `tx` ends. Writers run side by
/// side there (READ COMMITTED, no write guard): two enrollments of one person would each find no
/// candidate and get two IDs, two of one patient would both insert it. On SQLite the write guard
/// and `BEGIN IMMEDIATE` already serialise writers.
async fn lock_registry(db: &Db, tx: &mut Tx<'_>) -> Result<(), IndexError> {
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
            .bind("kizuna-index\nregistry")
            .fetch_one(&mut **tx)
            .await
            .map_err(IndexError::db("waiting for the registry's write lock"))?;
    }
    Ok(())
}

impl Registry {
    /// Opens (and migrates) the database at `url`.
    pub async fn open(url: &str) -> Result<Self, IndexError> {
        Ok(Self { db: Db::open(url).await?, audit: Default::default() })
    }

    /// Send audit events (link decisions, [`resolve_as`](Self::resolve_as) lookups) through
    /// `emitter`; without it they are written to the log.
    pub fn with_audit(mut self, emitter: kizuna_audit::emitter::AuditEmitter) -> Self {
        self.audit = emitter;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stores a trained matcher; it is used from now on. Returns its id.
    pub async fn install_matcher(
        &self,
        matcher: &Matcher,
        report: &TrainingReport,
    ) -> Result<i64, IndexError> {
        if !matcher.model.is_well_formed() {
            return Err(IndexError::Training("the model's probabilities are not distributions".into()));
        }
        let _g = self.db.write_guard().await;
        let row =
            sqlx::query("INSERT INTO models (trained_at, matcher, report) VALUES ($1, $2, $3) RETURNING id")
                .bind(now())
                .bind(serde_json::to_string(matcher)?)
                .bind(serde_json::to_string(report)?)
                .fetch_one(&self.db.pool)
                .await
                .map_err(IndexError::db("storing the matcher"))?;
        row.try_get::<i64, _>(0).map_err(IndexError::db("reading the matcher id"))
    }

    /// The matcher in use and its id, if one was installed.
    pub async fn matcher(&self) -> Result<Option<(i64, Matcher)>, IndexError> {
        let row = sqlx::query("SELECT id, matcher FROM models ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.db.pool)
            .await
            .map_err(IndexError::db("loading the matcher"))?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.try_get(0).map_err(IndexError::db("reading the matcher"))?;
        let json: String = row.try_get(1).map_err(IndexError::db("reading the matcher"))?;
        Ok(Some((id, serde_json::from_str(&json)?)))
    }

    /// The training report stored with matcher `id` (says whether it is the built-in model).
    pub async fn matcher_report(&self, id: i64) -> Result<Option<TrainingReport>, IndexError> {
        let row = sqlx::query("SELECT report FROM models WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(IndexError::db("loading the matcher's report"))?;
        let Some(row) = row else { return Ok(None) };
        let json: String = row.try_get(0).map_err(IndexError::db("reading the matcher's report"))?;
        Ok(Some(serde_json::from_str(&json)?))
    }

    /// Enrolls a patient of a facility. A new patient is scored against the enrolled patients that
    /// share a blocking key: above the upper threshold they join that common ID; otherwise they get
    /// a new one, and candidates between the thresholds go to the review queue. Without an
    /// installed matcher every new patient gets a new ID. A patient already enrolled keeps their
    /// link; only the stored demographics and blocking keys are refreshed.
    pub async fn enroll(&self, key: &RecordKey, d: &Demographics) -> Result<Enrollment, IndexError> {
        let matcher = self.matcher().await?;
        let prepared = Prepared::new(d);
        let keys = prepared.blocking_keys();
        let _g = self.db.write_guard().await;
        let mut tx = self.db.begin_write().await.map_err(IndexError::db("starting an enrollment"))?;
        lock_registry(&self.db, &mut tx).await?;
        let at = now();
        let demographics = serde_json::to_string(d)?;
        if let Some(existing) = find_in(&mut tx, key).await? {
            sqlx::query("UPDATE patients SET demographics = $1, updated_at = $2 WHERE facility_id = $3 AND patient_id = $4")
                .bind(&demographics)
                .bind(&at)
                .bind(&key.facility)
                .bind(&key.local_id)
                .execute(&mut *tx)
                .await
                .map_err(IndexError::db("updating demographics"))?;
            sqlx::query("DELETE FROM blocking_keys WHERE facility_id = $1 AND patient_id = $2")
                .bind(&key.facility)
                .bind(&key.local_id)
                .execute(&mut *tx)
                .await
                .map_err(IndexError::db("updating blocking keys"))?;
            insert_keys(&mut tx, key, &keys).await?;
            tx.commit().await.map_err(IndexError::db("committing an update"))?;
            return Ok(Enrollment { common_id: existing, outcome: Outcome::Updated });
        }

        let mut choice = match &matcher {
            Some((_, m)) => choose(m, key, &prepared, &candidates(&mut tx, &keys).await?),
            None => Choice { link: None, review: Vec::new() },
        };
        // `choose` sees only the patients blocking found: the chosen ID may hold another patient of
        // this facility that shares no key (linked by hand, or demographics since changed).
        if let Some(s) = &choice.link
            && holds_facility(&mut tx, &s.common_id, &key.facility).await?
        {
            choice.link_to_review();
        }
        let model_id = matcher.as_ref().map(|(id, _)| *id);
        sqlx::query(
            "INSERT INTO patients (facility_id, patient_id, demographics, enrolled_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&key.facility)
        .bind(&key.local_id)
        .bind(&demographics)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .map_err(IndexError::db("storing the patient"))?;
        insert_keys(&mut tx, key, &keys).await?;

        let mut consent_change = None;
        let enrollment = if let Some(s) = &choice.link {
            let reason = format!("matched {} at weight {:.1}", s.via, s.match_weight);
            set_link(
                &mut tx,
                key,
                &s.common_id,
                "auto",
                MATCHER_ACTOR,
                &reason,
                Some(s.match_weight),
                model_id,
            )
            .await?;
            // The new record had no ID, so no consent, of its own: joining an ID must not put it
            // under that ID's consent (given at other facilities), exactly as for a manual link.
            consent_change =
                consent::join_consent(&mut tx, key, None, &s.common_id, "auto-link", MATCHER_ACTOR, &reason)
                    .await?;
            Enrollment {
                common_id: s.common_id.clone(),
                outcome: Outcome::AutoLinked { match_weight: s.match_weight },
            }
        } else {
            let id = issue(&mut tx, MATCHER_ACTOR).await?;
            set_link(
                &mut tx,
                key,
                &id,
                "new",
                MATCHER_ACTOR,
                "no candidate above the auto-link threshold",
                None,
                model_id,
            )
            .await?;
            Enrollment { common_id: id, outcome: Outcome::NewId { review: Vec::new() } }
        };
        let mut review_ids = Vec::new();
        for s in &choice.review {
            let row = sqlx::query(
                "INSERT INTO review_items (created_at, facility_id, patient_id, candidate_common_id, candidate_facility_id, \
                 candidate_patient_id, match_weight, explanation, model_id, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open') RETURNING id",
            )
            .bind(&at)
            .bind(&key.facility)
            .bind(&key.local_id)
            .bind(s.common_id.as_str())
            .bind(&s.via.facility)
            .bind(&s.via.local_id)
            .bind(s.match_weight)
            .bind(serde_json::to_string(&s.explanation)?)
            .bind(model_id.unwrap_or(0))
            .fetch_one(&mut *tx)
            .await
            .map_err(IndexError::db("queueing a review item"))?;
            review_ids.push(row.try_get::<i64, _>(0).map_err(IndexError::db("reading a review id"))?);
        }
        tx.commit().await.map_err(IndexError::db("committing an enrollment"))?;
        let enrollment = match enrollment.outcome {
            Outcome::NewId { .. } => {
                Enrollment { outcome: Outcome::NewId { review: review_ids }, ..enrollment }
            }
            _ => enrollment,
        };
        if let (Outcome::AutoLinked { .. }, Some(s)) = (&enrollment.outcome, &choice.link) {
            let reason = format!("matched {} at weight {:.1}", s.via, s.match_weight);
            self.audit
                .emit(audit::link_event(key, &enrollment.common_id, "auto", MATCHER_ACTOR, &reason))
                .await;
        }
        if let Some(c) = consent_change {
            self.audit.emit(audit::consent_event(&c)).await;
        }
        tracing::debug!(patient = %key, common_id = %enrollment.common_id, outcome = ?enrollment.outcome, "enrolled");
        Ok(enrollment)
    }

    /// The common health ID a facility's patient is linked to.
    pub async fn find(&self, key: &RecordKey) -> Result<Option<CommonId>, IndexError> {
        let mut tx = self.db.pool.begin().await.map_err(IndexError::db("reading a link"))?;
        let found = find_in(&mut tx, key).await?;
        tx.commit().await.map_err(IndexError::db("reading a link"))?;
        Ok(found)
    }

    /// Every (facility, local patient ID) linked to a common health ID, sorted. An unknown ID is an
    /// error; an issued ID whose patients were all moved away gives an empty list.
    pub async fn resolve(&self, common_id: &CommonId) -> Result<Vec<RecordKey>, IndexError> {
        let exists = sqlx::query("SELECT 1 FROM common_ids WHERE common_id = $1")
            .bind(common_id.as_str())
            .fetch_optional(&self.db.pool)
            .await
            .map_err(IndexError::db("looking up a common ID"))?;
        if exists.is_none() {
            return Err(IndexError::UnknownCommonId(common_id.to_string()));
        }
        let rows = sqlx::query(
            "SELECT facility_id, patient_id FROM links WHERE common_id = $1 ORDER BY facility_id, patient_id",
        )
        .bind(common_id.as_str())
        .fetch_all(&self.db.pool)
        .await
        .map_err(IndexError::db("resolving a common ID"))?;
        rows.iter().map(|r| record_key(r, 0)).collect()
    }

    /// Every current link, as (facility, local ID, common ID): for exports and quality measurement.
    pub async fn all_links(&self) -> Result<Vec<(RecordKey, CommonId)>, IndexError> {
        let rows = sqlx::query(
            "SELECT facility_id, patient_id, common_id FROM links ORDER BY facility_id, patient_id",
        )
        .fetch_all(&self.db.pool)
        .await
        .map_err(IndexError::db("listing links"))?;
        rows.iter().map(|r| Ok((record_key(r, 0)?, common_id_at(r, 2)?))).collect()
    }

    /// An admin links a patient to a common health ID (moving them from the one they had).
    pub async fn link(
        &self,
        key: &RecordKey,
        to: &CommonId,
        admin: &str,
        reason: &str,
    ) -> Result<(), IndexError> {
        check_actor(admin, reason)?;
        let _g = self.db.write_guard().await;
        let mut tx = self.db.begin_write().await.map_err(IndexError::db("starting a manual link"))?;
        lock_registry(&self.db, &mut tx).await?;
        require_common_id(&mut tx, to).await?;
        let from = find_in(&mut tx, key).await?.ok_or_else(|| IndexError::NotEnrolled {
            facility: key.facility.clone(),
            local_id: key.local_id.clone(),
        })?;
        if from == *to {
            return Ok(());
        }
        record_event(&mut tx, key, "unlink", &from, "manual", admin, reason, None, None).await?;
        set_link(&mut tx, key, to, "manual", admin, reason, None, None).await?;
        let change =
            consent::join_consent(&mut tx, key, Some(&from), to, "manual link", admin, reason).await?;
        tx.commit().await.map_err(IndexError::db("committing a manual link"))?;
        self.audit_move(key, &from, to, "manual", admin, reason).await;
        if let Some(c) = change {
            self.audit.emit(audit::consent_event(&c)).await;
        }
        Ok(())
    }

    /// An admin unlinks a patient from their common health ID; the patient gets a new ID of their
    /// own (a patient is never without one). Returns the new ID.
    pub async fn unlink(&self, key: &RecordKey, admin: &str, reason: &str) -> Result<CommonId, IndexError> {
        check_actor(admin, reason)?;
        let _g = self.db.write_guard().await;
        let mut tx = self.db.begin_write().await.map_err(IndexError::db("starting an unlink"))?;
        lock_registry(&self.db, &mut tx).await?;
        let from = find_in(&mut tx, key).await?.ok_or_else(|| IndexError::NotEnrolled {
            facility: key.facility.clone(),
            local_id: key.local_id.clone(),
        })?;
        record_event(&mut tx, key, "unlink", &from, "split", admin, reason, None, None).await?;
        let id = issue(&mut tx, admin).await?;
        set_link(&mut tx, key, &id, "split", admin, reason, None, None).await?;
        // No consent is copied: the commonest reason to split is a wrong link (twins, a clerk's
        // mix-up), and the old ID's consent was then given by, or for, the other person. The new
        // ID starts with none on record, so nothing leaves the holding facility until a clerk
        // records the patient's own consent.
        tx.commit().await.map_err(IndexError::db("committing an unlink"))?;
        tracing::info!(patient = %key, %from, common_id = %id, "split off to a new ID with no consent on record");
        self.audit_move(key, &from, &id, "split", admin, reason).await;
        Ok(id)
    }

    /// Open review items, oldest first.
    pub async fn open_reviews(&self, limit: i64) -> Result<Vec<ReviewItem>, IndexError> {
        let rows = sqlx::query(
            "SELECT id, created_at, facility_id, patient_id, candidate_common_id, candidate_facility_id, \
             candidate_patient_id, match_weight, explanation, model_id, status \
             FROM review_items WHERE status = 'open' ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await
        .map_err(IndexError::db("listing review items"))?;
        rows.iter().map(review_item).collect()
    }

    /// An admin accepts a suggestion: the patient is linked to the candidate's common ID, and the
    /// patient's other open suggestions are closed (`superseded`). Refused
    /// ([`IndexError::StaleReview`], the item stays open) when the candidate is no longer on that ID.
    pub async fn accept_review(&self, id: i64, admin: &str, reason: &str) -> Result<CommonId, IndexError> {
        self.decide_review(id, admin, reason, true).await
    }

    /// An admin rejects a suggestion: the patient keeps their own common ID.
    pub async fn reject_review(&self, id: i64, admin: &str, reason: &str) -> Result<CommonId, IndexError> {
        self.decide_review(id, admin, reason, false).await
    }

    async fn decide_review(
        &self,
        id: i64,
        admin: &str,
        reason: &str,
        accept: bool,
    ) -> Result<CommonId, IndexError> {
        check_actor(admin, reason)?;
        let _g = self.db.write_guard().await;
        let mut tx = self.db.begin_write().await.map_err(IndexError::db("starting a review decision"))?;
        lock_registry(&self.db, &mut tx).await?;
        let row = sqlx::query(
            "SELECT id, created_at, facility_id, patient_id, candidate_common_id, candidate_facility_id, \
             candidate_patient_id, match_weight, explanation, model_id, status \
             FROM review_items WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(IndexError::db("reading a review item"))?
        .ok_or(IndexError::NoSuchReview(id))?;
        let item = review_item(&row)?;
        let current = find_in(&mut tx, &item.key).await?.ok_or_else(|| IndexError::NotEnrolled {
            facility: item.key.facility.clone(),
            local_id: item.key.local_id.clone(),
        })?;
        if accept {
            // The candidate may have been unlinked or moved since the item was queued: accepting
            // would then join the patient to whoever is on that ID now.
            let candidate_on = find_in(&mut tx, &item.candidate).await?;
            if candidate_on.as_ref() != Some(&item.candidate_common_id) {
                return Err(IndexError::StaleReview {
                    id,
                    candidate: item.candidate.to_string(),
                    suggested: item.candidate_common_id.to_string(),
                    now: candidate_on.map_or_else(|| "no common ID".to_owned(), |c| c.to_string()),
                });
            }
        }
        let mut consent_change = None;
        let result = if accept && current != item.candidate_common_id {
            record_event(&mut tx, &item.key, "unlink", &current, "review", admin, reason, None, None).await?;
            set_link(
                &mut tx,
                &item.key,
                &item.candidate_common_id,
                "review",
                admin,
                reason,
                Some(item.match_weight),
                Some(item.model_id),
            )
            .await?;
            let how = format!("accepted review item {id}");
            consent_change = consent::join_consent(
                &mut tx,
                &item.key,
                Some(&current),
                &item.candidate_common_id,
                &how,
                admin,
                reason,
            )
            .await?;
            item.candidate_common_id.clone()
        } else {
            current.clone()
        };
        sqlx::query(
            "UPDATE review_items SET status = $1, decided_at = $2, decided_by = $3, decision_reason = $4 WHERE id = $5",
        )
        .bind(if accept { "linked" } else { "rejected" })
        .bind(now())
        .bind(admin)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(IndexError::db("closing a review item"))?;
        if accept {
            // The patient's other suggestions are settled by this one: left open, accepting one
            // later would silently move the patient again.
            sqlx::query(
                "UPDATE review_items SET status = 'superseded', decided_at = $1, decided_by = $2, decision_reason = $3 \
                 WHERE facility_id = $4 AND patient_id = $5 AND status = 'open' AND id <> $6",
            )
            .bind(now())
            .bind(admin)
            .bind(format!("review item {id} accepted: {reason}"))
            .bind(&item.key.facility)
            .bind(&item.key.local_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(IndexError::db("closing the patient's other review items"))?;
        }
        tx.commit().await.map_err(IndexError::db("committing a review decision"))?;
        let method = if accept { "review-accepted" } else { "review-rejected" };
        if result == current {
            self.audit.emit(audit::link_event(&item.key, &result, method, admin, reason)).await;
        } else {
            self.audit_move(&item.key, &current, &result, method, admin, reason).await;
        }
        if let Some(c) = consent_change {
            self.audit.emit(audit::consent_event(&c)).await;
        }
        Ok(result)
    }

    /// The link history of one patient, oldest first.
    pub async fn history(&self, key: &RecordKey) -> Result<Vec<LinkEvent>, IndexError> {
        let rows = sqlx::query(
            "SELECT id, at, facility_id, patient_id, action, common_id, method, actor, reason, match_weight, model_id \
             FROM link_events WHERE facility_id = $1 AND patient_id = $2 ORDER BY id",
        )
        .bind(&key.facility)
        .bind(&key.local_id)
        .fetch_all(&self.db.pool)
        .await
        .map_err(IndexError::db("reading link history"))?;
        rows.iter().map(link_event).collect()
    }

    /// Every link event that touched a common health ID, oldest first.
    pub async fn history_of(&self, common_id: &CommonId) -> Result<Vec<LinkEvent>, IndexError> {
        let rows = sqlx::query(
            "SELECT id, at, facility_id, patient_id, action, common_id, method, actor, reason, match_weight, model_id \
             FROM link_events WHERE common_id = $1 ORDER BY id",
        )
        .bind(common_id.as_str())
        .fetch_all(&self.db.pool)
        .await
        .map_err(IndexError::db("reading link history"))?;
        rows.iter().map(link_event).collect()
    }
}

fn get<'r, T: sqlx::Decode<'r, Any> + sqlx::Type<Any>>(r: &'r AnyRow, i: usize) -> Result<T, IndexError> {
    r.try_get(i).map_err(IndexError::db("reading a row"))
}

fn record_key(r: &AnyRow, at: usize) -> Result<RecordKey, IndexError> {
    RecordKey::new(&get::<String>(r, at)?, &get::<String>(r, at + 1)?)
}

fn common_id_at(r: &AnyRow, at: usize) -> Result<CommonId, IndexError> {
    CommonId::parse(&get::<String>(r, at)?)
}

fn review_item(r: &AnyRow) -> Result<ReviewItem, IndexError> {
    Ok(ReviewItem {
        id: get(r, 0)?,
        created_at: get(r, 1)?,
        key: record_key(r, 2)?,
        candidate_common_id: common_id_at(r, 4)?,
        candidate: record_key(r, 5)?,
        match_weight: get(r, 7)?,
        explanation: serde_json::from_str(&get::<String>(r, 8)?)?,
        model_id: get(r, 9)?,
        status: get(r, 10)?,
    })
}

fn link_event(r: &AnyRow) -> Result<LinkEvent, IndexError> {
    Ok(LinkEvent {
        id: get(r, 0)?,
        at: get(r, 1)?,
        key: record_key(r, 2)?,
        action: get(r, 4)?,
        common_id: common_id_at(r, 5)?,
        method: get(r, 6)?,
        actor: get(r, 7)?,
        reason: get(r, 8)?,
        match_weight: get(r, 9)?,
        model_id: get(r, 10)?,
    })
}

async fn find_in(tx: &mut Tx<'_>, key: &RecordKey) -> Result<Option<CommonId>, IndexError> {
    let row = sqlx::query("SELECT common_id FROM links WHERE facility_id = $1 AND patient_id = $2")
        .bind(&key.facility)
        .bind(&key.local_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(IndexError::db("reading a link"))?;
    row.map(|r| common_id_at(&r, 0)).transpose()
}

/// Whether a patient of `facility` is linked to `id`.
async fn holds_facility(tx: &mut Tx<'_>, id: &CommonId, facility: &str) -> Result<bool, IndexError> {
    let row = sqlx::query("SELECT 1 FROM links WHERE common_id = $1 AND facility_id = $2 LIMIT 1")
        .bind(id.as_str())
        .bind(facility)
        .fetch_optional(&mut **tx)
        .await
        .map_err(IndexError::db("looking up a common ID's facilities"))?;
    Ok(row.is_some())
}

async fn require_common_id(tx: &mut Tx<'_>, id: &CommonId) -> Result<(), IndexError> {
    let row = sqlx::query("SELECT 1 FROM common_ids WHERE common_id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(IndexError::db("looking up a common ID"))?;
    row.map(|_| ()).ok_or_else(|| IndexError::UnknownCommonId(id.to_string()))
}

/// Issues a fresh common ID (retrying on the astronomically rare collision).
async fn issue(tx: &mut Tx<'_>, actor: &str) -> Result<CommonId, IndexError> {
    loop {
        let id = CommonId::random();
        let taken = sqlx::query("SELECT 1 FROM common_ids WHERE common_id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(IndexError::db("checking a new common ID"))?;
        if taken.is_some() {
            continue;
        }
        sqlx::query("INSERT INTO common_ids (common_id, issued_at, issued_by) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(now())
            .bind(actor)
            .execute(&mut **tx)
            .await
            .map_err(IndexError::db("issuing a common ID"))?;
        return Ok(id);
    }
}

async fn insert_keys(tx: &mut Tx<'_>, key: &RecordKey, keys: &[String]) -> Result<(), IndexError> {
    for k in keys {
        sqlx::query("INSERT INTO blocking_keys (key, facility_id, patient_id) VALUES ($1, $2, $3)")
            .bind(k)
            .bind(&key.facility)
            .bind(&key.local_id)
            .execute(&mut **tx)
            .await
            .map_err(IndexError::db("storing blocking keys"))?;
    }
    Ok(())
}

/// Enrolled patients sharing any of `keys`, with their links and demographics.
async fn candidates(tx: &mut Tx<'_>, keys: &[String]) -> Result<Vec<Candidate>, IndexError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for k in keys {
        let rows = sqlx::query(
            "SELECT p.facility_id, p.patient_id, l.common_id, p.demographics \
             FROM blocking_keys b \
             JOIN patients p ON p.facility_id = b.facility_id AND p.patient_id = b.patient_id \
             JOIN links l ON l.facility_id = b.facility_id AND l.patient_id = b.patient_id \
             WHERE b.key = $1 LIMIT $2",
        )
        .bind(k)
        .bind(MAX_CANDIDATES_PER_KEY)
        .fetch_all(&mut **tx)
        .await
        .map_err(IndexError::db("finding candidates"))?;
        for r in &rows {
            let key = record_key(r, 0)?;
            if !seen.insert(key.clone()) {
                continue;
            }
            let d: Demographics = serde_json::from_str(&get::<String>(r, 3)?)?;
            out.push(Candidate { key, common_id: common_id_at(r, 2)?, prepared: Prepared::new(&d) });
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn record_event(
    tx: &mut Tx<'_>,
    key: &RecordKey,
    action: &str,
    common_id: &CommonId,
    method: &str,
    actor: &str,
    reason: &str,
    match_weight: Option<f64>,
    model_id: Option<i64>,
) -> Result<(), IndexError> {
    // NULLs are written as literals, not bound: through the Any driver a bound NULL fixes the
    // statement's parameter type on PostgreSQL, and a later non-NULL value of another type in the
    // cached statement is refused ("incorrect binary data format").
    let weight = if match_weight.is_some() { "$9" } else { "NULL" };
    let model = match (match_weight.is_some(), model_id.is_some()) {
        (_, false) => "NULL",
        (true, true) => "$10",
        (false, true) => "$9",
    };
    let sql = format!(
        "INSERT INTO link_events (at, facility_id, patient_id, action, common_id, method, actor, reason, match_weight, model_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {weight}, {model})"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now())
        .bind(&key.facility)
        .bind(&key.local_id)
        .bind(action)
        .bind(common_id.as_str())
        .bind(method)
        .bind(actor)
        .bind(reason);
    if let Some(w) = match_weight {
        q = q.bind(w);
    }
    if let Some(m) = model_id {
        q = q.bind(m);
    }
    q.execute(&mut **tx).await.map_err(IndexError::db("recording link history"))?;
    Ok(())
}

/// Points the patient's link at `to` and records the event.
#[allow(clippy::too_many_arguments)]
async fn set_link(
    tx: &mut Tx<'_>,
    key: &RecordKey,
    to: &CommonId,
    method: &str,
    actor: &str,
    reason: &str,
    match_weight: Option<f64>,
    model_id: Option<i64>,
) -> Result<(), IndexError> {
    let at = now();
    sqlx::query(
        "INSERT INTO links (facility_id, patient_id, common_id, linked_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (facility_id, patient_id) DO UPDATE SET common_id = excluded.common_id, linked_at = excluded.linked_at",
    )
    .bind(&key.facility)
    .bind(&key.local_id)
    .bind(to.as_str())
    .bind(&at)
    .execute(&mut **tx)
    .await
    .map_err(IndexError::db("storing a link"))?;
    record_event(tx, key, "link", to, method, actor, reason, match_weight, model_id).await
}
