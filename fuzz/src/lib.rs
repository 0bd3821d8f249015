//! What the fuzz targets share: the price book, and the checks every accepted span must pass.

use std::sync::LazyLock;

use loupe_model::pricing::PriceBook;
use loupe_store::EncodedSpan;

/// The built-in price book, loaded once.
pub static PRICES: LazyLock<PriceBook> = LazyLock::new(PriceBook::builtin);

/// Every span a door accepted has a body that reads back from what the encoder wrote.
pub fn bodies_read_back(spans: &[EncodedSpan]) {
    for s in spans {
        if let Err(e) = loupe_store::decode_body_at(&s.body.group, s.body.index as usize) {
            panic!("the body of an accepted span does not read back: {e}");
        }
    }
}
