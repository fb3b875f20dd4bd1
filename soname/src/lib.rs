//! No code: this crate exists for its build script, which sets the soname
//! of quiche-ev's shared library (see build.rs).
