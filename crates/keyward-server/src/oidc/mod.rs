//! Single sign-on for the console through an OpenID provider (docs/SSO.md): the provider's
//! metadata and keys, discovered on first use and cached, the authorization URL and the way
//! back checked (`provider.rs`); what the browser carries between the steps, sealed
//! (`flow.rs`); a verified email made a session, or a member when auto-join is on
//! (`sign_in.rs`). The console draws the pages and keeps the cookies; it reaches this
//! through `keyward_console::Sso`, implemented in `console.rs`.

pub mod flow;
pub mod provider;
pub mod sign_in;
