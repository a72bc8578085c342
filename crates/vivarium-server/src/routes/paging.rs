//! Paged listings' query, `?page=1&per_page=N`: pages count from 1, each listing sets its own
//! largest page.

use vivarium_store::Page;

use crate::error::{ApiError, ApiResult};

/// The default of `page`.
pub fn first_page() -> u32 {
    1
}

/// The store's page for `page` and `per_page`, at most `most_per_page` items; 400 saying the
/// rule otherwise.
pub fn store_page(page: u32, per_page: u32, most_per_page: u32) -> ApiResult<Page> {
    if page == 0 || per_page == 0 || per_page > most_per_page {
        return Err(ApiError::bad_request(format!(
            "page starts at 1 and per_page is between 1 and {most_per_page}"
        )));
    }
    Ok(Page {
        offset: (page - 1).saturating_mul(per_page),
        limit: per_page,
    })
}
