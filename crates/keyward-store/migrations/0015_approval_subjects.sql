-- What an approval request is about, as a kind and an id: `key_id` held a key id, a member id,
-- a role's name, the workspace id or a service account id, told apart only by the action.
ALTER TABLE approvals ADD COLUMN subject_kind TEXT NOT NULL DEFAULT 'key';
ALTER TABLE approvals ADD COLUMN subject_id TEXT NOT NULL DEFAULT '';
UPDATE approvals SET subject_id = key_id, subject_kind = CASE action
    WHEN 'member.invite' THEN 'member'
    WHEN 'member.role' THEN 'member'
    WHEN 'member.remove' THEN 'member'
    WHEN 'role.update' THEN 'role'
    WHEN 'policy.update' THEN 'workspace'
    WHEN 'service_account.role' THEN 'service_account'
    ELSE 'key'
END;
ALTER TABLE approvals DROP COLUMN key_id;
CREATE INDEX approvals_subject ON approvals (subject_kind, subject_id);
