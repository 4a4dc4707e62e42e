//! The audit trail: every change appends an event inside the change's own transaction, so
//! there is no change without its event and no event without its change. Each workspace's
//! events form a hash chain (`keyward_core::audit`), keyed with the pepper (which the store
//! is given by [`Store::key_audit`], never stores); appending locks the workspace's row in
//! `audit_heads`, so writers on several nodes still make one chain. `audit_heads.keyed_from`
//! is the seq from which the chain is keyed: null for a chain written before keying, which
//! the next append (or [`Store::key_audit_chains`] at start) switches with a
//! `audit.chain_keyed` event.

use keyward_core::audit_action::AuditAction;
use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use keyward_core::audit::Chained;
use keyward_core::audit::{AuditActor, AuditEvent, AuditTarget, ChainCheck, ChainKey, ChainWalk, GENESIS};
use keyward_core::clock::{from_ms, to_ms};
use keyward_core::pepper::Pepper;
use serde_json::{json, Value};

use crate::tx::{KeySlot, Tx};
use crate::{Store, StoreError};

/// Where a change came from: the request that made it (all `None` for the server's own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// What a change says about itself; storage adds the sequence, time and hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub actor: AuditActor,
    /// Stored as its wire string ([`AuditAction::as_str`]), so the chain hashes what it did.
    pub action: AuditAction,
    pub target: AuditTarget,
    /// What changed; never a secret.
    pub changes: Value,
    pub origin: Origin,
}

impl AuditRecord {
    /// The server's own change (the sweeper expiring a request, say).
    pub fn system(action: AuditAction, target: AuditTarget, changes: Value) -> AuditRecord {
        AuditRecord {
            actor: AuditActor { kind: "system".into(), id: None, name: None },
            action,
            target,
            changes,
            origin: Origin::default(),
        }
    }

    /// A member acting on their own account (joining, a refused secret, a recovery code):
    /// actor and target are both the member.
    pub fn by_member(id: &str, email: &str, action: AuditAction, changes: Value, origin: Origin) -> AuditRecord {
        AuditRecord {
            actor: AuditActor { kind: "member".into(), id: Some(id.into()), name: Some(email.into()) },
            action,
            target: AuditTarget { kind: "member".into(), id: Some(id.into()), name: Some(email.into()) },
            changes,
            origin,
        }
    }

    /// The same actor and origin doing something else.
    pub fn with(&self, action: AuditAction, target: AuditTarget, changes: Value) -> AuditRecord {
        AuditRecord { action, target, changes, ..self.clone() }
    }
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// An exact action, or a prefix ending in `.*` (`key.*`).
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Events below this seq (pages run newest first).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

const COLUMNS: &str = "id, workspace_id, seq, time, actor_type, actor_id, actor_name, action, target_type, \
     target_id, target_name, ip, user_agent, request_id, changes, prev_hash, hash";

/// An `audit_events` row as stored ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    workspace_id: String,
    seq: i64,
    time: i64,
    actor_type: String,
    actor_id: Option<String>,
    actor_name: Option<String>,
    action: String,
    target_type: String,
    target_id: Option<String>,
    target_name: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    changes: String,
    prev_hash: String,
    hash: String,
}

impl From<EventRow> for AuditEvent {
    fn from(r: EventRow) -> AuditEvent {
        AuditEvent {
            id: r.id,
            seq: r.seq,
            time: from_ms(r.time),
            workspace_id: r.workspace_id,
            actor: AuditActor { kind: r.actor_type, id: r.actor_id, name: r.actor_name },
            action: r.action,
            target: AuditTarget { kind: r.target_type, id: r.target_id, name: r.target_name },
            ip: r.ip,
            user_agent: r.user_agent,
            request_id: r.request_id,
            // An unreadable value stays visible as text; the chain check then reports the row.
            changes: serde_json::from_str(&r.changes).unwrap_or(Value::String(r.changes)),
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

fn chain_key(slot: &KeySlot, workspace_id: &str) -> Result<ChainKey, StoreError> {
    slot.get().map(|p| ChainKey::for_workspace(p, workspace_id)).ok_or_else(|| {
        StoreError::Config("the audit chain is keyed with the pepper, and this store was not given it".into())
    })
}

fn audit_target() -> AuditTarget {
    AuditTarget { kind: "audit".into(), id: None, name: None }
}

async fn checkpoint_in(tx: &mut Tx, workspace_id: &str) -> Result<Option<(i64, String)>, StoreError> {
    Ok(sqlx::query_as("SELECT seq, hash FROM audit_checkpoints WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The event that switches a chain written before keying, at `seq`.
async fn switch_record(tx: &mut Tx, workspace_id: &str, seq: i64) -> Result<AuditRecord, StoreError> {
    let checkpoint = checkpoint_in(tx, workspace_id).await?.map(|(seq, hash)| json!({"seq": seq, "hash": hash}));
    Ok(AuditRecord::system(
        AuditAction::AuditChainKeyed,
        audit_target(),
        json!({"plain_through": seq - 1, "checkpoint": checkpoint, "hash": "hmac-sha256"}),
    ))
}

/// Writes the event at `seq` after `prev`, and its webhook deliveries.
async fn write(
    tx: &mut Tx,
    key: &ChainKey,
    (workspace_id, seq, prev): (&str, i64, &str),
    rec: &AuditRecord,
    now: DateTime<Utc>,
) -> Result<AuditEvent, StoreError> {
    let e = AuditEvent {
        id: format!("aud_{workspace_id}_{seq}"),
        seq,
        time: now,
        workspace_id: workspace_id.to_string(),
        actor: rec.actor.clone(),
        action: rec.action.as_str().to_string(),
        target: rec.target.clone(),
        ip: rec.origin.ip.clone(),
        user_agent: rec.origin.user_agent.clone(),
        request_id: rec.origin.request_id.clone(),
        changes: rec.changes.clone(),
        prev_hash: String::new(),
        hash: String::new(),
    }
    .seal(prev, key);
    let sql = format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    sqlx::query(&sql)
        .bind(&e.id)
        .bind(&e.workspace_id)
        .bind(e.seq)
        .bind(to_ms(e.time))
        .bind(&e.actor.kind)
        .bind(&e.actor.id)
        .bind(&e.actor.name)
        .bind(&e.action)
        .bind(&e.target.kind)
        .bind(&e.target.id)
        .bind(&e.target.name)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(&e.request_id)
        .bind(e.changes.to_string())
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut **tx)
        .await?;
    // A webhook event's deliveries commit with it: the outbox.
    crate::outbox::enqueue(tx, rec.action, &e).await?;
    Ok(e)
}

/// Appends `rec` to `workspace_id`'s chain inside `tx`.
/// Locks two chains' heads (made when missing) in the order of their workspace ids, so that
/// transactions writing to both take them in one order whatever their own.
pub(crate) async fn lock_heads(tx: &mut Tx, mut ids: [&str; 2]) -> Result<(), StoreError> {
    ids.sort_unstable();
    for id in ids {
        sqlx::query(
            "INSERT INTO audit_heads (workspace_id, seq, hash, keyed_from) VALUES ($1, 0, $2, 1) ON CONFLICT (workspace_id) DO NOTHING",
        )
        .bind(id)
        .bind(GENESIS)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE audit_heads SET seq = seq WHERE workspace_id = $1").bind(id).execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) async fn append(
    tx: &mut Tx,
    workspace_id: &str,
    rec: &AuditRecord,
    now: DateTime<Utc>,
) -> Result<AuditEvent, StoreError> {
    let key = chain_key(&tx.audit_key, workspace_id)?;
    // A new chain is keyed from its first event.
    sqlx::query(
        "INSERT INTO audit_heads (workspace_id, seq, hash, keyed_from) VALUES ($1, 0, $2, 1) ON CONFLICT (workspace_id) DO NOTHING",
    )
    .bind(workspace_id)
    .bind(GENESIS)
    .execute(&mut **tx)
    .await?;
    // Taking the next seq locks the head until the transaction ends.
    let (mut seq, mut prev, keyed_from): (i64, String, Option<i64>) =
        sqlx::query_as("UPDATE audit_heads SET seq = seq + 1 WHERE workspace_id = $1 RETURNING seq, hash, keyed_from")
            .bind(workspace_id)
            .fetch_one(&mut **tx)
            .await?;
    if keyed_from.is_none() {
        // A chain from before keying (no node has switched it since): record the switch first.
        let switch = switch_record(tx, workspace_id, seq).await?;
        prev = write(tx, &key, (workspace_id, seq, &prev), &switch, now).await?.hash;
        sqlx::query("UPDATE audit_heads SET seq = $1, keyed_from = $2 WHERE workspace_id = $3")
            .bind(seq + 1)
            .bind(seq)
            .bind(workspace_id)
            .execute(&mut **tx)
            .await?;
        seq += 1;
    }
    let e = write(tx, &key, (workspace_id, seq, &prev), rec, now).await?;
    sqlx::query("UPDATE audit_heads SET hash = $1 WHERE workspace_id = $2")
        .bind(&e.hash)
        .bind(workspace_id)
        .execute(&mut **tx)
        .await?;
    Ok(e)
}

/// A change's transaction that commits only with the change's audit event: [`Audited::commit`]
/// appends it, then commits, so the two are one transaction. Any other end (an early
/// [`Audited::rollback`], an error, a drop) rolls both back. It derefs to the [`Tx`], so the
/// change is written through it as through any transaction.
pub(crate) struct Audited<'a> {
    tx: Tx,
    workspace_id: &'a str,
    rec: Cow<'a, AuditRecord>,
    now: DateTime<Utc>,
}

impl Audited<'_> {
    /// What the event says changed, when that is known only once the change ran (the keys
    /// a deletion touched, say); its actor, action and target stay.
    pub(crate) fn changes(&mut self, changes: Value) {
        self.rec.to_mut().changes = changes;
    }

    /// The target's id, when it is known only once the change ran (an upsert that found
    /// an existing row keeps that row's id).
    pub(crate) fn target_id(&mut self, id: &str) {
        self.rec.to_mut().target.id = Some(id.to_string());
    }

    /// Appends the event, then commits the change with it.
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        append(&mut self.tx, self.workspace_id, &self.rec, self.now).await?;
        self.tx.commit().await
    }

    /// Appends the event, then `also` to another workspace's chain (an app's developer told
    /// of an installation), then commits. Both chains' heads are locked first in the order
    /// of their ids: two workspaces installing each other's apps at once never wait on each
    /// other's locks.
    pub(crate) async fn commit_also(mut self, workspace_id: &str, also: &AuditRecord) -> Result<(), StoreError> {
        lock_heads(&mut self.tx, [self.workspace_id, workspace_id]).await?;
        append(&mut self.tx, self.workspace_id, &self.rec, self.now).await?;
        append(&mut self.tx, workspace_id, also, self.now).await?;
        self.tx.commit().await
    }

    /// Ends it unchanged and unrecorded (the change turned out to be refused or a no-op).
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for Audited<'_> {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for Audited<'_> {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl Store {
    /// Begins a change that `rec` records in `workspace_id`'s audit trail at `now`: see
    /// [`Audited`].
    pub(crate) async fn audited<'a>(
        &self,
        workspace_id: &'a str,
        rec: &'a AuditRecord,
        now: DateTime<Utc>,
    ) -> Result<Audited<'a>, StoreError> {
        Ok(Audited { tx: self.begin().await?, workspace_id, rec: Cow::Borrowed(rec), now })
    }

    /// Records an event that goes with no other write (a refused login, say).
    pub async fn record(&self, workspace_id: &str, rec: &AuditRecord, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.audited(workspace_id, rec, now).await?.commit().await
    }

    /// Events newest first.
    pub async fn list_audit(&self, workspace_id: &str, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_events WHERE workspace_id = $1");
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        let mut n = 1;
        let mut text = |sql: &mut String, cond: &str, v: String| {
            n += 1;
            sql.push_str(&cond.replace('?', &format!("${n}")));
            texts.push(v);
            n
        };
        if let Some(a) = &f.action {
            match a.strip_suffix('*') {
                Some(prefix) => {
                    let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    text(&mut sql, " AND action LIKE ? ESCAPE '\\'", format!("{escaped}%"));
                }
                None => {
                    text(&mut sql, " AND action = ?", a.clone());
                }
            }
        }
        if let Some(a) = &f.actor {
            text(&mut sql, " AND actor_id = ?", a.clone());
        }
        if let Some(t) = &f.target {
            text(&mut sql, " AND target_id = ?", t.clone());
        }
        let mut m = n;
        for (cond, v) in [
            (" AND time >= ?", f.since.map(to_ms)),
            (" AND time < ?", f.until.map(to_ms)),
            (" AND seq < ?", f.before_seq),
        ] {
            if let Some(v) = v {
                m += 1;
                sql.push_str(&cond.replace('?', &format!("${m}")));
                ints.push(v);
            }
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", u64::from(f.limit) + 1));
        let mut q = sqlx::query_as::<_, EventRow>(&sql).bind(workspace_id);
        for t in texts {
            q = q.bind(t);
        }
        for i in ints {
            q = q.bind(i);
        }
        Ok(q.fetch_all(&self.pool).await?.into_iter().map(AuditEvent::from).collect())
    }

    /// Events with `seq` above `after`, oldest first, at most `limit` (for export and checks).
    pub async fn audit_after(&self, workspace_id: &str, after: i64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events WHERE workspace_id = $1 AND seq > $2 ORDER BY seq LIMIT {limit}"
        );
        let rows = sqlx::query_as::<_, EventRow>(&sql).bind(workspace_id).bind(after).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(AuditEvent::from).collect())
    }

    /// Recomputes `workspace_id`'s chain, page by page, from its start or from the checkpoint
    /// left by pruning.
    pub async fn verify_audit(&self, workspace_id: &str) -> Result<ChainCheck, StoreError> {
        let key = chain_key(&self.audit_key, workspace_id)?;
        let (mut walk, mut after, first) = match self.audit_checkpoint(workspace_id).await? {
            Some((seq, hash)) => (ChainWalk::from_checkpoint(key, &hash, seq), seq, seq),
            None => (ChainWalk::from_start(key), 0, 0),
        };
        loop {
            let page = self.audit_after(workspace_id, after, 1_000).await?;
            let Some(last) = page.last() else { break };
            // Read by the position after the last row, not by the next seq expected: a
            // deleted row must not end the walk early.
            after = last.seq;
            page.iter().for_each(|e| walk.push(e));
        }
        // A tail cut off below the head is missing events too.
        let (head_seq, head_hash) = self.audit_head(workspace_id).await?;
        Ok(match walk.finish() {
            ChainCheck::Intact { events, head, .. } if head != head_hash => ChainCheck::Broken {
                ok: false,
                broken_at: first + i64::try_from(events).unwrap_or(i64::MAX) + 1,
                reason: format!("the log ends before the recorded head (seq {head_seq})"),
            },
            done => done,
        })
    }

    /// Deletes every workspace's events older than `before`, keeping for each the last
    /// pruned event's seq and hash as the chain's new starting point, and appends an
    /// `audit.prune` event naming that checkpoint (so deleting more from the front, and moving
    /// the checkpoint, is found). Returns how many went.
    pub async fn prune_audit(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for ws in self.workspace_ids().await? {
            // What it pruned is known once it has: the event's changes are set then.
            let rec = AuditRecord::system(AuditAction::AuditPrune, audit_target(), Value::Null);
            let mut tx = self.audited(&ws, &rec, now).await?;
            let last: Option<(i64, String)> = sqlx::query_as(
                "SELECT seq, hash FROM audit_events WHERE workspace_id = $1 AND time < $2 ORDER BY seq DESC LIMIT 1",
            )
            .bind(&ws)
            .bind(to_ms(before))
            .fetch_optional(&mut **tx)
            .await?;
            let Some((seq, hash)) = last else {
                tx.rollback().await?;
                continue;
            };
            let gone = sqlx::query("DELETE FROM audit_events WHERE workspace_id = $1 AND seq <= $2")
                .bind(&ws)
                .bind(seq)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            sqlx::query(
                "INSERT INTO audit_checkpoints (workspace_id, seq, hash) VALUES ($1, $2, $3) \
                 ON CONFLICT (workspace_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            )
            .bind(&ws)
            .bind(seq)
            .bind(&hash)
            .execute(&mut **tx)
            .await?;
            let what = json!({
                "checkpoint": {"seq": seq, "hash": hash},
                "events": gone,
                "before": before.to_rfc3339_opts(SecondsFormat::Millis, true),
            });
            tx.changes(what);
            tx.commit().await?;
            pruned += gone;
        }
        Ok(pruned)
    }

    /// Makes `workspace_id`'s last event its chain's checkpoint, recorded by an `audit.prune`
    /// event naming it (`erasing: true`), so that every event up to it may go (a deleted
    /// workspace's erasure) and the chain still verifies, from there. `None` for a chain
    /// without events.
    pub(crate) async fn checkpoint_for_erasure(
        &self,
        workspace_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let rec = AuditRecord::system(AuditAction::AuditPrune, audit_target(), Value::Null);
        let mut tx = self.audited(workspace_id, &rec, now).await?;
        let last: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT seq, hash, action FROM audit_events WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(workspace_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((seq, hash, action)) = last else {
            tx.rollback().await?;
            return Ok(None);
        };
        // An erasure tried again (it failed, or a node stopped midway): the chain already
        // ends with the event naming its checkpoint, and needs no other.
        if action == AuditAction::AuditPrune.as_str()
            && checkpoint_in(&mut tx, workspace_id).await?.map(|c| c.0) == Some(seq - 1)
        {
            tx.rollback().await?;
            return Ok(Some(seq - 1));
        }
        sqlx::query(
            "INSERT INTO audit_checkpoints (workspace_id, seq, hash) VALUES ($1, $2, $3) \
             ON CONFLICT (workspace_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .bind(workspace_id)
        .bind(seq)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
        tx.changes(json!({"checkpoint": {"seq": seq, "hash": hash}, "erasing": true}));
        tx.commit().await?;
        Ok(Some(seq))
    }

    /// Gives the store the pepper its audit chains are keyed with (every clone shares it;
    /// the first one given stays).
    pub fn key_audit(&self, pepper: &Pepper) {
        let _ = self.audit_key.set(pepper.clone());
    }

    /// Switches every chain written before keying (`keyed_from` null) with an
    /// `audit.chain_keyed` event: its earlier events keep their plain SHA-256 hashes, the rest
    /// are keyed. Returns each switched workspace and the switch's seq. Run at start, so an
    /// upgraded database verifies before anything new is appended.
    pub async fn key_audit_chains(&self, now: DateTime<Utc>) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT workspace_id FROM audit_heads WHERE keyed_from IS NULL ORDER BY workspace_id")
                .fetch_all(&self.pool)
                .await?;
        let mut switched = Vec::new();
        for ws in rows {
            let key = chain_key(&self.audit_key, &ws)?;
            let mut tx = self.begin().await?;
            // Under the head's lock, and only if no other node switched it meanwhile.
            let head: Option<(i64, String)> = sqlx::query_as(
                "UPDATE audit_heads SET seq = seq + 1, keyed_from = seq + 1 \
                 WHERE workspace_id = $1 AND keyed_from IS NULL RETURNING seq, hash",
            )
            .bind(&ws)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((seq, prev)) = head else {
                tx.rollback().await?;
                continue;
            };
            let switch = switch_record(&mut tx, &ws, seq).await?;
            let e = write(&mut tx, &key, (&ws, seq, &prev), &switch, now).await?;
            sqlx::query("UPDATE audit_heads SET hash = $1 WHERE workspace_id = $2")
                .bind(&e.hash)
                .bind(&ws)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            switched.push((ws, seq));
        }
        Ok(switched)
    }

    /// The event at `seq`, if the log still holds it.
    pub async fn audit_event(&self, workspace_id: &str, seq: i64) -> Result<Option<AuditEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE workspace_id = $1 AND seq = $2");
        let row = sqlx::query_as::<_, EventRow>(&sql).bind(workspace_id).bind(seq).fetch_optional(&self.pool).await?;
        Ok(row.map(AuditEvent::from))
    }

    /// Where the chain starts after pruning: the last pruned event's seq and hash.
    pub async fn audit_checkpoint(&self, workspace_id: &str) -> Result<Option<(i64, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT seq, hash FROM audit_checkpoints WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The chain's head: its last seq and hash (0 and 64 zeros for an empty log).
    pub async fn audit_head(&self, workspace_id: &str) -> Result<(i64, String), StoreError> {
        let row = sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE workspace_id = $1")
            .bind(workspace_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.unwrap_or_else(|| (0, GENESIS.to_string())))
    }

    /// Every workspace's id (for an offline check of all chains).
    pub async fn workspace_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM workspaces ORDER BY id").fetch_all(&self.pool).await?)
    }
}
