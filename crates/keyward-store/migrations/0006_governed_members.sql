-- Member invitations and promotions to approver roles can wait on an approval request.
ALTER TABLE members ADD COLUMN approval_id TEXT;
ALTER TABLE members ADD COLUMN pending_role TEXT;
