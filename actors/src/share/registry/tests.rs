use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn create_list_remove() {
    let data = tempfile::tempdir().unwrap();
    let photos = tempfile::tempdir().unwrap();
    fs::write(photos.path().join("keep.jpg"), b"x").unwrap();
    let store = Store::open(&data.path().join("db")).unwrap();
    let now = Timestamp::new(1000, 0).unwrap();
    let share = create_share(&store, data.path(), photos.path(), now).unwrap();
    assert!(photos.path().join(META_DIR).is_dir());
    assert_eq!(load_shares(&store).unwrap(), vec![share.clone()]);
    let keys = read_keys(data.path(), &share.id).unwrap();
    assert_eq!(keys.key_id, share.id);
    let mode = fs::metadata(keys_path(data.path(), &share.id)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    assert!(matches!(create_share(&store, data.path(), photos.path(), now), Err(RegistryError::AlreadyShared(_))));
    let inner = photos.path().join("inner");
    fs::create_dir(&inner).unwrap();
    assert!(matches!(create_share(&store, data.path(), &inner, now), Err(RegistryError::Overlaps { .. })));
    assert!(matches!(
        create_share(&store, data.path(), &photos.path().join("nope"), now),
        Err(RegistryError::NotADirectory(_))
    ));

    let issued =
        create_code(&store, &share, AccessLevel::ReadWrite, Lifetime::Secs(86_400), false, CodeSecret::Generated, now)
            .unwrap();
    let code = issued.code.unwrap();
    let codes = load_codes(&store).unwrap();
    assert_eq!(codes.len(), 1);
    assert_eq!(find_code(&store, &code.access_id()).unwrap().as_ref(), Some(&codes[0]));
    assert_eq!(find_code(&store, &Sha256Hash([0; 32])).unwrap(), None);
    assert_eq!(codes[0].access_id, code.access_id());
    assert!(codes[0].is_usable(1000 + 86_399) && !codes[0].is_usable(1000 + 86_400));
    // The code itself is not in the database.
    let password = code.credentials().password;
    let all: Vec<u8> =
        store.meta_with_prefix("").unwrap().into_iter().flat_map(|(k, v)| [k.into_bytes(), v].concat()).collect();
    assert!(!all.windows(password.len()).any(|w| w == password.as_bytes()));
    assert!(!all.windows(16).any(|w| w == code.to_string().as_bytes()[..16].to_vec()));

    remove_share(&store, data.path(), photos.path()).unwrap();
    assert!(load_shares(&store).unwrap().is_empty());
    assert!(load_codes(&store).unwrap().is_empty());
    assert!(photos.path().join("keep.jpg").exists());
    assert!(!photos.path().join(META_DIR).exists());
    assert!(matches!(remove_share(&store, data.path(), photos.path()), Err(RegistryError::NotShared(_))));
}

#[test]
fn codes_expire_get_used_up_and_cancel() {
    let data = tempfile::tempdir().unwrap();
    let photos = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("db")).unwrap();
    let now = Timestamp::new(1000, 0).unwrap();
    let share = create_share(&store, data.path(), photos.path(), now).unwrap();
    let rw = AccessLevel::ReadWrite;
    let make = |lifetime, multi, secret| create_code(&store, &share, rw, lifetime, multi, secret, now);
    let cancel = |which: &CodeRef| cancel_code(&store, which, now.secs());

    let once = make(Lifetime::Secs(60), false, CodeSecret::Generated).unwrap();
    assert_eq!(once.record.state(1059), CodeState::Active);
    assert_eq!(once.record.state(1060), CodeState::Expired);
    mark_code_used(&store, &once.record.access_id, PeerId([1; 16])).unwrap();
    let used = find_code(&store, &once.record.access_id).unwrap().unwrap();
    assert_eq!((used.state(1001), used.used_by.clone()), (CodeState::Used, vec![PeerId([1; 16])]));

    let many = make(Lifetime::Never, true, CodeSecret::Generated).unwrap();
    mark_code_used(&store, &many.record.access_id, PeerId([1; 16])).unwrap();
    mark_code_used(&store, &many.record.access_id, PeerId([2; 16])).unwrap();
    let many_now = find_code(&store, &many.record.access_id).unwrap().unwrap();
    assert_eq!((many_now.state(i64::MAX - 1), many_now.used_by.len()), (CodeState::Active, 2));

    let custom = |user: &str, pw: &str| CodeSecret::Custom {
        username: user.into(),
        credentials: clearskies_protocol::access_code::Credentials::custom(user, pw).unwrap(),
    };
    let alice = make(Lifetime::Secs(60), false, custom("alice", "pw1")).unwrap();
    assert!(alice.code.is_none());
    assert_eq!(alice.record.username.as_deref(), Some("alice"));
    assert!(matches!(make(Lifetime::Secs(60), false, custom("alice", "pw2")), Err(RegistryError::UsernameTaken(_))));
    // The verifier is for the password given: a different one does not match.
    let creds = clearskies_protocol::access_code::Credentials::custom("alice", "pw1").unwrap();
    assert_eq!(alice.record.verifier_record(), VerifierRecord::new(&creds.username, "pw1", alice.record.salt));

    // Cancel by username, by the code itself, by an ID prefix; unknown and short refused.
    assert_eq!(cancel(&CodeRef::Username("alice".into())).unwrap().access_id, alice.record.access_id);
    // A single-use code is deleted; a spread (multi-use) one is kept cancelled, below.
    assert!(find_code(&store, &alice.record.access_id).unwrap().is_none());
    assert!(matches!(cancel(&CodeRef::Username("alice".into())), Err(RegistryError::NoSuchCode(_))));
    // Once cancelled the username can be used again.
    make(Lifetime::Secs(60), false, custom("alice", "pw2")).unwrap();
    // A multi-use code is kept, cancelled, with a newer update time, so that the
    // cancellation spreads; it is refused like any cancelled code, and cannot be cancelled
    // twice.
    cancel(&CodeRef::Code(many.code.clone().unwrap())).unwrap();
    let kept = find_code(&store, &many.record.access_id).unwrap().unwrap();
    assert!(kept.revoked && kept.update_time > many.record.update_time);
    assert_eq!(kept.state(0), CodeState::Cancelled);
    assert!(matches!(cancel(&CodeRef::Code(many.code.clone().unwrap())), Err(RegistryError::NoSuchCode(_))));
    let prefix = once.record.access_id.to_string()[..8].to_uppercase();
    assert_eq!(cancel(&CodeRef::IdPrefix(prefix)).unwrap().access_id, once.record.access_id);
    // Too short to name one code safely: asks for more digits (it said "no code matches").
    let short = cancel(&CodeRef::IdPrefix("abc".into())).unwrap_err();
    assert!(matches!(short, RegistryError::PrefixTooShort(_)), "{short:?}");
    assert!(short.to_string().contains("at least 8 hex digits"), "{short}");
    assert!(matches!(cancel(&CodeRef::IdPrefix("zzzzzzzz".into())), Err(RegistryError::NoSuchCode(_))));
    // The second alice, and the multi-use code kept cancelled (the single-use one is gone).
    assert_eq!(load_codes(&store).unwrap().len(), 2);
}

#[test]
fn levels_and_what_each_code_hands_over() {
    let data = tempfile::tempdir().unwrap();
    let photos = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("db")).unwrap();
    let share = create_share(&store, data.path(), photos.path(), Timestamp::new(1000, 0).unwrap()).unwrap();
    let keys = read_keys(data.path(), &share.id).unwrap();
    let ids: Vec<_> = keys.key_ids().into_iter().map(|(id, _, level)| (id, level)).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], (share.id, AccessLevel::ReadWrite));
    assert!(keys.levels.iter().all(|e| e.private_rsa.as_deref().is_some_and(|p| p.contains("PRIVATE KEY"))));

    let rw = keys.grant(AccessLevel::ReadWrite).unwrap();
    assert_eq!(rw.keys, keys.levels);
    let ro = keys.grant(AccessLevel::ReadOnly).unwrap();
    assert_eq!(ro.access_level, AccessLevel::ReadOnly);
    assert_eq!(ro.keys.len(), 2);
    assert_eq!(ro.keys[0], *keys.level(AccessLevel::ReadOnly).unwrap());
    let public = &ro.keys[1];
    assert_eq!(
        (public.access_level, public.id, public.key, &public.private_rsa),
        (AccessLevel::ReadWrite, None, None, &None)
    );
    assert!(public.public_rsa.as_deref().unwrap().starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    let u = keys.grant(AccessLevel::Untrusted).unwrap();
    assert_eq!(u.keys.len(), 2);
    assert_eq!((u.keys[0].access_level, u.keys[0].private_rsa.as_ref()), (AccessLevel::Untrusted, None));
    assert!(u.keys.iter().all(|k| k.access_level != AccessLevel::ReadOnly), "nothing that decrypts");
    let held_u = ShareKeys {
        key_id: u.keys[0].id.unwrap(),
        key: u.keys[0].key.unwrap(),
        levels: u.keys.clone(),
        untrusted_seed: None,
        generation: 0,
    };
    assert!(held_u.untrusted().is_none() && held_u.signing_key().is_none() && held_u.verifying_key().is_some());
    assert!(keys.untrusted().is_some());

    // What a read-only peer keeps: it verifies with the read-write key, cannot sign, and
    // can hand on only read-only access.
    let ro_id = ro.keys[0].id.unwrap();
    let held = ShareKeys {
        key_id: ro_id,
        key: ro.keys[0].key.unwrap(),
        levels: ro.keys.clone(),
        untrusted_seed: None,
        generation: 0,
    };
    let sig = keys.signing_key().unwrap().sign(b"body").unwrap();
    assert!(held.verifying_key().unwrap().verify(b"body", sig.as_bytes()));
    assert!(held.signing_key().is_none());
    assert!(held.grant(AccessLevel::ReadWrite).is_none());
    assert_eq!(held.grant(AccessLevel::ReadOnly).unwrap().keys, ro.keys);

    // A key file from before access levels gets its levels once, keeping the share ID.
    let old = ShareKeys { key_id: share.id, key: keys.key, levels: Vec::new(), untrusted_seed: None, generation: 0 };
    write_keys(data.path(), &share.id, &old).unwrap();
    let completed = complete_keys(data.path(), &share, read_keys(data.path(), &share.id).unwrap()).unwrap();
    assert_eq!((completed.key_id, completed.levels.len()), (share.id, 3));
    assert_eq!(read_keys(data.path(), &share.id).unwrap(), completed);
}

/// A join creates the missing part of its path only when it goes through; one that fails
/// (the path taken, under a file, or a write failing after the directories were made)
/// leaves the filesystem as it was.
#[test]
fn a_failed_join_leaves_no_directories() {
    let now = Timestamp::new(1000, 0).unwrap();
    let (sharer_data, sharer_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sharer = Store::open(&sharer_data.path().join("db")).unwrap();
    let shared = create_share(&sharer, sharer_data.path(), sharer_dir.path(), now).unwrap();
    let keys = read_keys(sharer_data.path(), &shared.id).unwrap().grant(AccessLevel::ReadWrite).unwrap();

    let (data, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let store = Store::open(&data.path().join("db")).unwrap();
    let join = |path: &Path| {
        let joining = Joining { path, peer_id: PeerId([7; 16]), via: "127.0.0.1:1", selection: Default::default() };
        join_share(&store, data.path(), joining, &keys, now)
    };
    let mine = home.path().join("mine");
    fs::create_dir(&mine).unwrap();
    create_share(&store, data.path(), &mine, now).unwrap();
    assert!(matches!(join(&mine.join("x/y")), Err(RegistryError::Overlaps { .. })));
    assert!(!mine.join("x").exists());
    let file = home.path().join("afile");
    fs::write(&file, b"data").unwrap();
    for target in [file.clone(), file.join("sub")] {
        assert!(matches!(join(&target), Err(RegistryError::NotADirectory(p)) if p == file), "{target:?}");
        assert!(matches!(missing_dirs(&target), Err(RegistryError::NotADirectory(p)) if p == file), "{target:?}");
    }
    assert_eq!(fs::read(&file).unwrap(), b"data");

    // The key file cannot be written: the directories made for the join go again.
    let keys_dir = data.path().join("keys");
    fs::rename(&keys_dir, data.path().join("keys.aside")).unwrap();
    fs::write(&keys_dir, b"not a directory").unwrap();
    let target = home.path().join("new/deep");
    assert_eq!(missing_dirs(&target).unwrap(), [home.path().join("new"), target.clone()]);
    assert!(matches!(join(&target), Err(RegistryError::Io { .. })));
    assert!(!home.path().join("new").exists());
    assert_eq!(load_shares(&store).unwrap().len(), 1);
    // An existing directory keeps itself and what it holds; only the marker goes.
    let existing = home.path().join("existing");
    fs::create_dir(&existing).unwrap();
    fs::write(existing.join("keep.txt"), b"k").unwrap();
    assert!(matches!(join(&existing), Err(RegistryError::Io { .. })));
    assert!(existing.join("keep.txt").exists() && !existing.join(META_DIR).exists());

    fs::remove_file(&keys_dir).unwrap();
    fs::rename(data.path().join("keys.aside"), &keys_dir).unwrap();
    let joined = join(&target).unwrap();
    assert_eq!(joined.path, fs::canonicalize(&target).unwrap());
    assert!(target.join(META_DIR).is_dir());
}

#[test]
fn the_server_secret_persists_and_is_private() {
    let data = tempfile::tempdir().unwrap();
    let a = server_secret(data.path()).unwrap();
    assert_eq!(server_secret(data.path()).unwrap(), a);
    let mode = fs::metadata(data.path().join("keys/server-secret")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_ne!(server_secret(tempfile::tempdir().unwrap().path()).unwrap(), a);
}

#[test]
fn error_codes_keep_their_wire_names() {
    let p = || PathBuf::from("/x");
    let io = || std::io::Error::other("x");
    let cases = [
        (RegistryError::NotADirectory(p()), "not_a_directory"),
        (RegistryError::AlreadyShared(p()), "already_shared"),
        (RegistryError::Overlaps { path: p(), other: p() }, "overlapping_share"),
        (RegistryError::DataDir { path: p(), relation: "is", data_dir: p() }, "data_directory"),
        (RegistryError::NotShared(p()), "not_shared"),
        (RegistryError::Io { context: "x".into(), source: io() }, "io_error"),
        (RegistryError::Store(StoreError::Injected), "database_error"),
        (RegistryError::Random, "random_failed"),
        (RegistryError::BadKeys, "bad_keys"),
        (RegistryError::Unsupported("unknown"), "unsupported_mode"),
        (RegistryError::UsernameTaken("u".into()), "username_taken"),
        (RegistryError::NoSuchCode("c".into()), "no_such_code"),
        (RegistryError::AmbiguousCode("c".into()), "ambiguous_code"),
        (RegistryError::PrefixTooShort("c".into()), "bad_code"),
    ];
    for (e, wire) in cases {
        assert_eq!(serde_json::to_value(e.code()).unwrap(), wire, "{e:?}");
    }
}

#[test]
fn rotated_keys_are_new_but_for_the_rsa_keys_and_the_backups_seed() {
    let data = tempfile::tempdir().unwrap();
    let photos = tempfile::tempdir().unwrap();
    let store = Store::open(&data.path().join("db")).unwrap();
    let now = Timestamp::new(1000, 0).unwrap();
    let share = create_share(&store, data.path(), photos.path(), now).unwrap();
    let code =
        create_code(&store, &share, AccessLevel::ReadWrite, Lifetime::Secs(60), false, CodeSecret::Generated, now);
    code.unwrap();
    let keys = read_keys(data.path(), &share.id).unwrap();
    let new = rotated_keys(&keys).unwrap();
    for level in [AccessLevel::ReadWrite, AccessLevel::ReadOnly, AccessLevel::Untrusted] {
        let (a, b) = (keys.level(level).unwrap(), new.level(level).unwrap());
        assert!(a.id != b.id && a.key != b.key, "{level:?}");
        assert_eq!((&a.private_rsa, &a.public_rsa), (&b.private_rsa, &b.public_rsa));
    }
    assert_eq!(new.untrusted_seed, keys.level(AccessLevel::ReadOnly).unwrap().key, "the backups stay readable");
    assert_eq!(new.key_id, new.level(AccessLevel::ReadWrite).unwrap().id.unwrap());
    // Peers invited after the rotation (a code, `keys export`) get the seed and the
    // generation with their keys; an untrusted one never the seed.
    for level in [AccessLevel::ReadWrite, AccessLevel::ReadOnly] {
        let g = new.grant(level).unwrap();
        assert_eq!((g.untrusted_seed, g.generation), (new.untrusted_seed, 1), "{level:?}");
    }
    let g = new.grant(AccessLevel::Untrusted).unwrap();
    assert_eq!((g.untrusted_seed, g.generation), (None, 1));
    let ro_grant = new.grant(AccessLevel::ReadOnly).unwrap();
    let joiner = ShareKeys {
        key_id: ro_grant.keys[0].id.unwrap(),
        key: ro_grant.keys[0].key.unwrap(),
        levels: ro_grant.keys.clone(),
        untrusted_seed: ro_grant.untrusted_seed,
        generation: ro_grant.generation,
    };
    assert!(
        joiner.untrusted().is_some() && joiner.untrusted_seed == keys.level(AccessLevel::ReadOnly).unwrap().key,
        "a read-only peer invited after the rotation reads the backups made before"
    );
    // Moving onto another share's ID, or our own, is refused.
    assert!(apply_rekey(&store, data.path(), &share, &ShareKeys { key_id: share.id, ..new.clone() }).is_err());

    // What a read-only peer is sent is taken only for the same share (its RSA key).
    let rekey = |k: &ShareKeys, level| clearskies_protocol::message::core::Rekey {
        keys: k.grant(level).unwrap(),
        removed: vec![],
    };
    let held_ro = ShareKeys {
        key_id: keys.level(AccessLevel::ReadOnly).unwrap().id.unwrap(),
        key: keys.level(AccessLevel::ReadOnly).unwrap().key.unwrap(),
        levels: keys.grant(AccessLevel::ReadOnly).unwrap().keys,
        untrusted_seed: None,
        generation: 0,
    };
    let got = received_keys(&held_ro, AccessLevel::ReadOnly, &rekey(&new, AccessLevel::ReadOnly)).unwrap();
    assert_eq!(got.key_id, new.level(AccessLevel::ReadOnly).unwrap().id.unwrap());
    assert!(received_keys(&held_ro, AccessLevel::ReadWrite, &rekey(&new, AccessLevel::ReadOnly)).is_err());
    let other = create_share(&store, data.path(), tempfile::tempdir().unwrap().path(), now).unwrap();
    let foreign = rotated_keys(&read_keys(data.path(), &other.id).unwrap()).unwrap();
    assert!(received_keys(&held_ro, AccessLevel::ReadOnly, &rekey(&foreign, AccessLevel::ReadOnly)).is_err());
    let mut no_seed = rekey(&new, AccessLevel::ReadOnly);
    no_seed.keys.untrusted_seed = None;
    assert!(received_keys(&held_ro, AccessLevel::ReadOnly, &no_seed).is_err(), "the backups would become unreadable");
    // An old rekey replayed after a newer rotation is refused.
    assert_eq!((got.generation, new.generation), (1, 1));
    assert!(received_keys(&got, AccessLevel::ReadOnly, &rekey(&new, AccessLevel::ReadOnly)).is_err());
    let newer = rotated_keys(&new).unwrap();
    assert!(received_keys(&got, AccessLevel::ReadOnly, &rekey(&newer, AccessLevel::ReadOnly)).is_ok());

    // Moving the share: a new ID, the same index, the old entry, key file and codes gone.
    let moved = apply_rekey(&store, data.path(), &share, &new).unwrap();
    assert_eq!((moved.id, moved.store_key(), moved.previous), (new.key_id, share.store_key(), Some(share.id)));
    assert!(load_shares(&store).unwrap().iter().all(|s| s.id != share.id));
    assert!(!keys_path(data.path(), &share.id).exists() && keys_path(data.path(), &moved.id).exists());
    assert!(load_codes(&store).unwrap().iter().all(|c| c.share != share.id));
    // A crash between writing the new entry and removing the old: the old one is dropped.
    save_config(&store, &share).unwrap();
    let loaded = drop_superseded(&store, data.path(), load_shares(&store).unwrap());
    assert!(loaded.iter().any(|s| s.id == moved.id) && loaded.iter().all(|s| s.id != share.id));
    assert!(load_shares(&store).unwrap().iter().all(|s| s.id != share.id));
}
