//! The integration tests, one crate (one link): each module drives the real binary or
//! the real server over a real transport, or checks a rule of the codebase.

mod architecture;
