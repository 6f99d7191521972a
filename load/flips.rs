//! Placeholder: the ownership-flip benchmark (written by its own change).
fn main() {}
