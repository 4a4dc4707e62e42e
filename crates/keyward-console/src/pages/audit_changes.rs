//! An audit event's `changes` as a person reads them: one line per field, `field: old → new`
//! where the event recorded the old value (`before`, beside `changes` or the fields
//! themselves; `from`/`to` of a role change), else `field: value`.

use serde_json::{Map, Value};

/// One field of an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: String,
}

/// A value in words: a list joined, nothing as "none", an object as compact JSON.
fn words(v: &Value) -> String {
    match v {
        Value::Null => "none".into(),
        Value::String(s) if s.is_empty() => "none".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(words).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

pub(crate) fn changes_of(v: &Value) -> Vec<Change> {
    let Some(obj) = v.as_object() else { return Vec::new() };
    let before = obj.get("before").and_then(Value::as_object);
    // A change of one value: a member's role (`from`, `to`).
    if let (Some(from), Some(to @ Value::String(_))) = (obj.get("from"), obj.get("to")) {
        return vec![Change { field: "role".into(), before: Some(words(from)), after: words(to) }];
    }
    let after: Map<String, Value> = match (obj.get("changes"), obj.get("to")) {
        (Some(Value::Object(c)), _) => c.clone(),
        (_, Some(Value::Object(t))) => t.clone(),
        _ => obj
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "before" | "from"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    after
        .iter()
        // Fields an answer or request left unset say nothing.
        .filter(|(k, v)| !(v.is_null() && before.is_none_or(|b| !b.contains_key(*k))))
        .filter_map(|(k, new)| {
            let old = before.and_then(|b| b.get(k));
            if old == Some(new) {
                return None;
            }
            Some(Change { field: k.clone(), before: old.map(words), after: words(new) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(c: &Change) -> String {
        match &c.before {
            Some(b) => format!("{}: {b} → {}", c.field, c.after),
            None => format!("{}: {}", c.field, c.after),
        }
    }

    fn lines(v: Value) -> Vec<String> {
        changes_of(&v).iter().map(line).collect()
    }

    #[test]
    fn a_key_update_reads_before_and_after() {
        let v = json!({"changes": {"name": "new", "permissions": ["a", "b"], "scopes": ["s"]},
            "before": {"name": "old", "permissions": [], "scopes": ["s"]}});
        assert_eq!(lines(v), vec!["name: old → new", "permissions: none → a, b"]);
    }

    #[test]
    fn other_events_read_as_fields() {
        assert_eq!(lines(json!({"from": "admin", "to": "viewer"})), vec!["role: admin → viewer"]);
        let role = json!({"from": ["x"], "to": {"permissions": ["x", "y"], "description": null},
            "before": {"permissions": ["x"], "description": "d"}});
        assert_eq!(lines(role), vec!["description: d → none", "permissions: x → x, y"]);
        assert_eq!(
            lines(json!({"name": "ci", "role": "viewer", "description": null})),
            vec!["name: ci", "role: viewer"]
        );
        assert_eq!(
            lines(json!({"require_mfa": true, "before": {"require_mfa": false}})),
            vec!["require_mfa: false → true"]
        );
        assert_eq!(
            lines(json!({"grants": [{"role": "op", "scopes": ["w:1"]}]})),
            vec![r#"grants: [{"role":"op","scopes":["w:1"]}]"#]
        );
        assert!(lines(json!({})).is_empty() && lines(json!(null)).is_empty());
    }
}
