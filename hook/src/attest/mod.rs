//! Attesting outputs: gather what Nix recorded ([`gather`]), sign it the way Nix signs
//! store paths ([`sign`]), and get it to the server or the spool ([`deliver`]).

mod deliver;
mod gather;
mod sign;

pub use deliver::{attest, keep_mismatches, Attested, Delivery};
pub use gather::{gather, Mismatch};
pub use sign::{requests, OutputFacts};

#[cfg(test)]
pub(crate) use deliver::tests::config;
#[cfg(test)]
pub(crate) use sign::tests::{facts, key};
