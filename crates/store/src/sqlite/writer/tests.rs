use super::*;
use crate::Expect;

fn writer() -> (tempfile::TempDir, Writer, broadcast::Receiver<Arc<Change>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let mut conn = Connection::open(&path).unwrap();
    crate::sqlite::schema::migrate(&mut conn, &path).unwrap();
    let (changes, watch) = broadcast::channel(16);
    let writer = Writer { conn, revision: Arc::new(AtomicU64::new(0)), changes };
    (dir, writer, watch)
}

fn request(txn: Txn) -> (Request, oneshot::Receiver<Result<u64, StoreError>>) {
    let (reply, answer) = oneshot::channel();
    (Request { txn, reply }, answer)
}

/// One batch, so one SQLite transaction: the conflicting txn is rolled back alone
/// and the rest apply as if run one by one.
#[test]
fn one_batch_isolates_each_txn() {
    let (_dir, mut writer, mut watch) = writer();
    let txns = [
        Txn::new().put("a", "1", Expect::Absent),
        Txn::new().put("a", "x", Expect::Absent).put("z", "x", Expect::Any),
        Txn::new().put("b", "1", Expect::Absent),
        Txn::new().delete("c", Expect::Any),
        Txn::new().put("a", "2", Expect::Version(1)),
        Txn::new(),
    ];
    let (batch, answers): (Vec<_>, Vec<_>) = txns.into_iter().map(request).unzip();
    writer.commit_batch(batch);
    let results: Vec<_> = answers.into_iter().map(|mut a| a.try_recv().expect("answered")).collect();
    assert!(matches!(&results[1], Err(StoreError::Conflict { key }) if key == "a"));
    let revisions: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(revisions, [1, 2, 2, 3, 3]);
    assert_eq!(writer.revision.load(Ordering::Acquire), 3);
    assert_eq!(read_revision(&writer.conn).unwrap(), 3);
    let keys: Vec<_> = std::iter::from_fn(|| watch.try_recv().ok()).map(|c| (c.revision, c.key.clone())).collect();
    assert_eq!(keys, [(1, "a".into()), (2, "b".into()), (3, "a".into())]);
    assert_eq!(current_version(&writer.conn, "z").unwrap(), None);
    assert_eq!(current_version(&writer.conn, "a").unwrap(), Some(2));
}

/// A SQLite error inside one txn rolls back that txn's savepoint only.
#[test]
fn sql_error_fails_only_its_txn() {
    let (_dir, mut writer, _watch) = writer();
    writer
        .conn
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON kv WHEN NEW.key = 'bad'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .unwrap();
    let txns = [
        Txn::new().put("one", "1", Expect::Any),
        Txn::new().put("x", "1", Expect::Any).put("bad", "1", Expect::Any),
        Txn::new().put("two", "1", Expect::Any),
    ];
    let (batch, answers): (Vec<_>, Vec<_>) = txns.into_iter().map(request).unzip();
    writer.commit_batch(batch);
    let results: Vec<_> = answers.into_iter().map(|mut a| a.try_recv().expect("answered")).collect();
    assert!(matches!(results[0], Ok(1)));
    assert!(matches!(results[1], Err(StoreError::Sqlite { .. })));
    assert!(matches!(results[2], Ok(2)));
    assert_eq!(current_version(&writer.conn, "x").unwrap(), None);
    assert_eq!(current_version(&writer.conn, "two").unwrap(), Some(1));
}

/// A batch that cannot run answers everyone with the error and moves nothing.
#[test]
fn failed_batch_answers_everyone() {
    let (_dir, mut writer, _watch) = writer();
    writer.conn.execute_batch("DROP TABLE meta").unwrap();
    let (batch, answers): (Vec<_>, Vec<_>) =
        (0..3).map(|i| request(Txn::new().put(format!("k{i}"), "v", Expect::Any))).unzip();
    writer.commit_batch(batch);
    for mut answer in answers {
        assert!(matches!(answer.try_recv(), Ok(Err(StoreError::Sqlite { .. }))));
    }
    assert_eq!(writer.revision.load(Ordering::Acquire), 0);
    assert_eq!(current_version(&writer.conn, "k0").unwrap(), None);
}
