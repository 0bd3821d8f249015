struct Secret;

#[loupe_sdk::trace]
fn leak(secret: Secret) -> u32 {
    let _ = secret;
    1
}

fn main() {}
