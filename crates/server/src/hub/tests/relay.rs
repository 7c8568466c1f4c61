//! Relay: signals pass only between devices taking part in the call.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Ringing,
    AnsweredOnBobsLaptop,
}

#[test]
fn relay_is_only_between_devices_taking_part_in_the_call() {
    use Stage::*;
    // (stage, sender, receiver, Some(receiving connection) if delivered)
    let cases = [
        (Ringing, BOB_PHONE, "alice/laptop", Some(ALICE_LAPTOP)),
        (Ringing, BOB_LAPTOP, "alice/laptop", Some(ALICE_LAPTOP)),
        (Ringing, ALICE_LAPTOP, "bob/phone", Some(BOB_PHONE)),
        (Ringing, CAROL_PHONE, "alice/laptop", None),
        (Ringing, ALICE_LAPTOP, "carol/phone", None),
        (Ringing, ALICE_LAPTOP, "alice/laptop", None),
        (AnsweredOnBobsLaptop, BOB_LAPTOP, "alice/laptop", Some(ALICE_LAPTOP)),
        (AnsweredOnBobsLaptop, ALICE_LAPTOP, "bob/laptop", Some(BOB_LAPTOP)),
        (AnsweredOnBobsLaptop, BOB_PHONE, "alice/laptop", None),
        (AnsweredOnBobsLaptop, ALICE_LAPTOP, "bob/phone", None),
        (AnsweredOnBobsLaptop, CAROL_PHONE, "bob/laptop", None),
    ];
    let sender_names = BTreeMap::from([
        (ALICE_LAPTOP, "alice/laptop"),
        (BOB_PHONE, "bob/phone"),
        (BOB_LAPTOP, "bob/laptop"),
        (CAROL_PHONE, "carol/phone"),
    ]);
    for (stage, from, to, delivered_to) in cases {
        let case = format!("{stage:?}: {} -> {to}", sender_names[&from]);
        let mut h = call_to_bob_on_two_devices();
        h.sign_in(h.t0, CAROL_PHONE, "carol/phone");
        if stage == AnsweredOnBobsLaptop {
            h.send(h.at(secs(1)), BOB_LAPTOP, accept("c1"));
        }
        h.discard_all();

        let seq = h.send(h.at(secs(2)), from, signal("c1", to));
        match delivered_to {
            Some(conn) => {
                let relayed =
                    ServerMessage::Signal { call: call_id("c1"), from: addr(sender_names[&from]), payload: offer() };
                assert_eq!(h.take(conn), vec![relayed], "{case}");
            }
            None => {
                assert_eq!(
                    only_error(&h.take(from)),
                    (ErrorCode::NotAllowed, Some(seq), Some(call_id("c1"))),
                    "{case}"
                );
            }
        }
        h.assert_silent(&case);
    }
}
