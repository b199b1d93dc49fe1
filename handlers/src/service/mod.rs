//! What the API does, without HTTP: the handlers under `api/` extract and answer,
//! these functions decide. The server's command line calls them directly.

pub mod attestations;
pub mod builders;
pub mod derivations;
pub mod jobsets;
pub mod log;
