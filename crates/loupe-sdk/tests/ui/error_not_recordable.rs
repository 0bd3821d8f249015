// An error type that is neither Display, Debug nor Serialize cannot say what went wrong.
struct Opaque;

#[loupe_sdk::trace]
fn check(n: u32) -> Result<u32, Opaque> {
    if n > 1 { Err(Opaque) } else { Ok(n) }
}

fn main() {}
