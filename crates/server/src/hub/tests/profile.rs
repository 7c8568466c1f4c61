//! Profile pictures: checked, kept while shown, handed out.

use super::*;

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn png(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(size, 7);
    bytes
}

#[test]
fn a_picture_is_checked_kept_named_in_the_profile_and_handed_out() {
    let mut h = TestHub::new();
    h.sign_in(h.t0, ALICE_LAPTOP, "alice/laptop");
    h.sign_in(h.t0, ERIN_PHONE, "erin/phone");
    h.send(h.t0, ERIN_PHONE, ClientMessage::WatchPresence { users: None });
    h.discard_all();
    let picture = png(MAX_PICTURE_BYTES);
    let name = picture_ref(&picture);

    // What is refused changes nothing.
    let refused: [(&str, ClientMessage, &str); 5] = [
        (
            "too large",
            ClientMessage::SetPicture { mime: "image/png".into(), data: base64(&png(MAX_PICTURE_BYTES + 1)) },
            "at most 64 KiB",
        ),
        (
            "not a picture",
            ClientMessage::SetPicture { mime: "image/png".into(), data: base64(b"<svg onload=alert(1)>") },
            "not a PNG, JPEG or WebP",
        ),
        (
            "another type than said",
            ClientMessage::SetPicture { mime: "image/jpeg".into(), data: base64(&picture) },
            "is image/png, not image/jpeg",
        ),
        ("not base64", ClientMessage::SetPicture { mime: "image/png".into(), data: "!!!".into() }, "not base64"),
        ("a picture nobody has", ClientMessage::GetPicture { avatar: name.clone() }, "no picture"),
    ];
    for (case, message, says) in refused {
        let seq = h.send(h.at(secs(1)), ALICE_LAPTOP, message);
        let reply = h.take(ALICE_LAPTOP);
        assert_eq!(only_error(&reply), (ErrorCode::BadRequest, Some(seq), None), "{case}");
        let ServerMessage::Error { message, .. } = &reply[0] else { unreachable!() };
        assert!(message.contains(says), "{case}: {message}");
        h.assert_silent(case);
    }

    h.send(h.at(secs(2)), ALICE_LAPTOP, ClientMessage::SetPicture { mime: "image/png".into(), data: base64(&picture) });
    let pushed = h.take(ERIN_PHONE);
    assert!(
        matches!(pushed.as_slice(), [ServerMessage::PresenceChanged { entry }] if entry.profile.avatar.as_deref() == Some(name.as_str())),
        "{pushed:?}"
    );
    h.send(h.at(secs(3)), ERIN_PHONE, ClientMessage::GetPicture { avatar: name.clone() });
    assert_eq!(
        h.take(ERIN_PHONE),
        vec![ServerMessage::Picture { avatar: name.clone(), mime: "image/png".into(), data: base64(&picture) }]
    );

    // A new picture replaces the old, which is gone; clearing the avatar lets the new one go too.
    let second = png(100);
    h.send(h.at(secs(4)), ALICE_LAPTOP, ClientMessage::SetPicture { mime: "image/png".into(), data: base64(&second) });
    h.discard_all();
    h.send(h.at(secs(5)), ERIN_PHONE, ClientMessage::GetPicture { avatar: name });
    assert_eq!(only_error(&h.take(ERIN_PHONE)).0, ErrorCode::BadRequest);
    h.send(h.at(secs(6)), ALICE_LAPTOP, ClientMessage::SetProfile { display_name: None, avatar: Some(String::new()) });
    h.discard_all();
    h.send(h.at(secs(7)), ERIN_PHONE, ClientMessage::GetPicture { avatar: picture_ref(&second) });
    assert_eq!(only_error(&h.take(ERIN_PHONE)).0, ErrorCode::BadRequest);
}
