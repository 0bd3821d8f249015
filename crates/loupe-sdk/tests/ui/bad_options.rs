#[loupe_sdk::trace(span_type = "TOOLS")]
fn a() {}

#[loupe_sdk::trace(skip(nope))]
fn b(x: u32) -> u32 { x }

#[loupe_sdk::trace(colour = "red")]
fn c() {}

#[loupe_sdk::trace]
struct NotAFunction;

fn main() {}
