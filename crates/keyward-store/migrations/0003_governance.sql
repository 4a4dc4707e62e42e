-- Governance: member credentials, sessions, MFA, policies and approval requests.
-- Passwords are argon2id PHC strings; setup tokens, session tokens and recovery codes are
-- stored only as HMACs under the pepper; TOTP secrets are sealed with a pepper-derived key.
ALTER TABLE members ADD COLUMN password_hash TEXT;
ALTER TABLE members ADD COLUMN setup_hash TEXT;
ALTER TABLE members ADD COLUMN setup_expires_at BIGINT;
ALTER TABLE members ADD COLUMN totp_secret TEXT;
ALTER TABLE members ADD COLUMN totp_pending TEXT;
ALTER TABLE members ADD COLUMN totp_last_step BIGINT;
ALTER TABLE members ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN locked_until BIGINT;
CREATE UNIQUE INDEX members_setup_hash ON members (setup_hash);
CREATE INDEX members_email ON members (email);

CREATE TABLE sessions (
    hash TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    member_id TEXT NOT NULL REFERENCES members(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    member_id TEXT NOT NULL REFERENCES members(id),
    hash TEXT NOT NULL,
    PRIMARY KEY (member_id, hash)
);

CREATE TABLE policies (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    action TEXT NOT NULL,
    key_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    status TEXT NOT NULL,
    required BIGINT NOT NULL,
    approver_roles TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT,
    decided_by TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX approvals_workspace ON approvals (workspace_id, status, id);

CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals(id),
    member_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (approval_id, member_id)
);

-- The approval request a pending key waits on.
ALTER TABLE api_keys ADD COLUMN approval_id TEXT;
