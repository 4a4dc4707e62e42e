//! Posted forms: `application/x-www-form-urlencoded` pairs, kept in order so that a field
//! may repeat (checkboxes).

use axum::extract::{FromRequest, Request};

use crate::error::Fail;

/// Largest form accepted (a public key, lists of addresses and permissions fit easily).
const MAX_FORM: usize = 64 << 10;

pub(crate) struct Form(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Fail;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let body = axum::body::to_bytes(req.into_body(), MAX_FORM)
            .await
            .map_err(|_| Fail::invalid("form", "the form is too large"))?;
        Ok(Form(form_urlencoded::parse(&body).into_owned().collect()))
    }
}

impl Form {
    /// The field's value, trimmed; empty when absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// The value unless it is blank.
    pub(crate) fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name)).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// Every value of a repeated field (checkboxes), blanks dropped.
    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.trim().to_string()).collect()
    }

    /// A text area of items, one per line or separated by commas.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        split_list(self.get(name))
    }

    pub(crate) fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

pub(crate) fn split_list(raw: &str) -> Vec<String> {
    raw.split([',', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_lines_and_commas() {
        assert_eq!(split_list(" a, b\r\nc\n\n,"), vec!["a", "b", "c"]);
        let f = Form(vec![("r".into(), "x".into()), ("r".into(), " ".into()), ("r".into(), "y".into())]);
        assert_eq!(f.all("r"), vec!["x", "y"]);
        assert_eq!(f.get("missing"), "");
        assert!(f.opt("missing").is_none());
    }
}
