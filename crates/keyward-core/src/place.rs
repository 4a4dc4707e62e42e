//! Where a key lives — its workspace and environment — shared by every cached key of both
//! (`intern::place`), with the verify answer's text around the key's name: the answer about
//! a key is written from these shared parts and the key's own, never serialized per key.

use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Place {
    pub workspace_id: Arc<str>,
    pub environment: Arc<str>,
    /// `,"workspace_id":"ws_…","name":`: the answer between the key's id and its name.
    pub(crate) before_name: Box<str>,
    /// `,"environment":"live",`: the answer between the key's name and its access's part.
    pub(crate) after_name: Box<str>,
}

impl Place {
    pub fn new(workspace_id: &str, environment: &str) -> Place {
        let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
        Place {
            before_name: format!(r#","workspace_id":{},"name":"#, json(workspace_id)).into(),
            after_name: format!(r#","environment":{},"#, json(environment)).into(),
            workspace_id: workspace_id.into(),
            environment: environment.into(),
        }
    }
}

// A place is its workspace and environment: the rest is derived from them.
impl PartialEq for Place {
    fn eq(&self, other: &Self) -> bool {
        self.workspace_id == other.workspace_id && self.environment == other.environment
    }
}

impl Eq for Place {}

impl std::hash::Hash for Place {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.workspace_id, &self.environment).hash(state);
    }
}
