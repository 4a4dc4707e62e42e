-- One row every node writes to answer `/healthz`: only a real write shows that the database
-- takes writes now (its disk not full, not a read-only standby).
CREATE TABLE health_probe (id INTEGER PRIMARY KEY, writes BIGINT NOT NULL);
INSERT INTO health_probe (id, writes) VALUES (1, 0);
