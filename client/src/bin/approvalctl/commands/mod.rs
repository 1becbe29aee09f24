//! One module per subcommand, each the same three steps: turn the flags into
//! a call, make it, print the answer (and pick the exit code).

pub mod cancel;
pub mod get;
pub mod list;
pub mod mcp;
pub mod request;
pub mod respond;
pub mod watch;
pub mod webhooks;
