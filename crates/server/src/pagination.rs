//! `maxResults` and `nextToken`: opaque tokens that resume a key-ordered listing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use berth_api::ApiError;
use berth_store::{ListQuery, Store};
use serde::de::DeserializeOwned;

use crate::records::{self, RecordError};

/// How many records a filtered listing reads from the store at a time.
const SCAN_BATCH: usize = 128;

const TOKEN_PREFIX: &str = "berth1:";

/// Where a page starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The largest number of items to answer.
    pub size: usize,
    /// Resume strictly after this store key.
    pub after: Option<String>,
}

impl Page {
    /// Reads `maxResults` (1..=`max`, default `max`) and `nextToken`, with ECS's errors.
    pub fn from_request(max_results: Option<i32>, next_token: Option<&str>, max: i32) -> Result<Self, ApiError> {
        let size = match max_results {
            None => max,
            Some(n) if (1..=max).contains(&n) => n,
            Some(_) => return Err(ApiError::invalid(format!("maxResults must be between 1 and {max}."))),
        };
        let after = next_token.map(decode).transpose()?;
        Ok(Self { size: usize::try_from(size).unwrap_or(1), after })
    }

    /// The token that resumes after `last_key`, when a full page was answered.
    pub fn next_token(&self, answered: usize, last_key: Option<&str>) -> Option<String> {
        (answered >= self.size).then_some(last_key).flatten().map(encode)
    }
}

/// Fills `page` from the records under `prefix`, keeping those `keep` maps to an item;
/// answers the items and the token for the next page.
pub async fn collect<T, I>(
    store: &dyn Store,
    prefix: &str,
    page: &Page,
    mut keep: impl FnMut(&str, T) -> Option<I>,
) -> Result<(Vec<I>, Option<String>), RecordError>
where
    T: DeserializeOwned,
{
    let mut items = Vec::new();
    let mut after = page.after.clone();
    loop {
        let query = ListQuery { start_after: after.clone(), limit: Some(SCAN_BATCH), ..ListQuery::prefix(prefix) };
        let batch = records::list::<T>(store, query).await?;
        let exhausted = batch.len() < SCAN_BATCH;
        for (key, value) in batch {
            if let Some(item) = keep(&key, value) {
                items.push(item);
                if items.len() == page.size {
                    return Ok((items, page.next_token(page.size, Some(&key))));
                }
            }
            after = Some(key);
        }
        if exhausted {
            return Ok((items, None));
        }
    }
}

fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{key}"))
}

fn decode(token: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(TOKEN_PREFIX).map(str::to_string))
        .ok_or_else(|| ApiError::invalid("Invalid nextToken: it was not returned by a previous call."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let p = Page::from_request(Some(2), None, 100).unwrap();
        let t = p.next_token(2, Some("cluster/b")).unwrap();
        assert_eq!(Page::from_request(None, Some(&t), 100).unwrap().after.as_deref(), Some("cluster/b"));
        assert!(Page::from_request(None, Some("garbage!"), 100).is_err());
        assert!(Page::from_request(None, Some(&URL_SAFE_NO_PAD.encode("other")), 100).is_err());
    }

    #[test]
    fn max_results_is_bounded() {
        assert!(Page::from_request(Some(0), None, 100).is_err());
        assert!(Page::from_request(Some(101), None, 100).is_err());
        assert_eq!(Page::from_request(None, None, 100).unwrap().size, 100);
        assert_eq!(p_none_short(), None);
    }

    fn p_none_short() -> Option<String> {
        Page::from_request(Some(5), None, 100).unwrap().next_token(3, Some("k"))
    }
}
