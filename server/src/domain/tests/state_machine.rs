//! `Approval::finish`: a pending approval ends once, by a decision, a
//! cancellation or its deadline, and a final one never changes.

use super::{deadline, pending};
use crate::domain::{Approval, Ending, Finished, Millis, Status, Verdict};

fn approve(by: &str) -> Ending {
    Ending::Decided {
        verdict: Verdict::Approve,
        by: by.into(),
        reason: "looks good".into(),
    }
}

fn reject(by: &str) -> Ending {
    Ending::Decided {
        verdict: Verdict::Reject,
        by: by.into(),
        reason: "not now".into(),
    }
}

fn cancel(by: &str) -> Ending {
    Ending::Cancelled {
        by: by.into(),
        reason: "no longer needed".into(),
    }
}

fn every_ending() -> [(&'static str, Ending); 3] {
    [
        ("approve", approve("alice")),
        ("reject", reject("alice")),
        ("cancel", cancel("agent")),
    ]
}

#[test]
fn before_its_deadline_a_pending_approval_takes_the_ending_stamped_now() {
    let just_before = Millis(deadline().0 - 1);
    let cases = [
        ("approve", approve("alice"), Status::Approved),
        ("reject", reject("bob"), Status::Rejected),
        ("cancel", cancel("agent"), Status::Cancelled),
    ];
    for now in [Millis(super::CREATED.0 + 1), just_before] {
        for (name, ending, want) in &cases {
            let mut a = pending("deploy", "agent");
            let Finished::Done(done) = a.finish(ending, now) else {
                panic!("{name} at {now:?}: not applied");
            };
            assert_eq!(done.status, *want, "{name}");
            let r = done.resolution.as_ref().expect("a resolution");
            assert_eq!(r.decided_by, ending.by(), "{name}");
            assert_eq!(r.decided_at, now, "{name}");
            let (Ending::Decided { reason, .. } | Ending::Cancelled { reason, .. }) = ending;
            assert_eq!(&r.reason, reason, "{name}");
            assert_eq!(a, done, "{name}: the approval itself changed");
        }
    }
}

#[test]
fn at_or_after_its_deadline_it_expires_at_the_deadline_whatever_the_ending() {
    let d = deadline();
    for now in [d, Millis(d.0 + 1), Millis(d.0 + 3_600_000)] {
        for (name, ending) in every_ending() {
            let mut a = pending("deploy", "agent");
            let Finished::Expired(expired) = a.finish(&ending, now) else {
                panic!("{name} at {now:?}: not expired");
            };
            assert_eq!(expired.status, Status::Expired, "{name}");
            let r = expired.resolution.as_ref().expect("a resolution");
            assert_eq!(
                r.decided_at, d,
                "{name}: stamped with the deadline, not now"
            );
            assert_eq!(r.decided_by, "", "{name}: nobody decided");
            assert_eq!(r.reason, Approval::EXPIRED_REASON, "{name}");
            assert_eq!(a, expired, "{name}");
        }
    }
}

#[test]
fn a_final_approval_never_changes_whatever_the_ending_or_the_time() {
    let early = Millis(super::CREATED.0 + 1);
    let mut finals = Vec::new();
    for (_, ending) in every_ending() {
        let mut a = pending("deploy", "agent");
        a.finish(&ending, early);
        finals.push(a);
    }
    let mut expired = pending("deploy", "agent");
    expired.expire();
    finals.push(expired);

    for before in finals {
        assert!(before.is_final(), "{:?}", before.status);
        for now in [early, deadline(), Millis(deadline().0 + 1)] {
            for (name, ending) in every_ending() {
                let mut a = before.clone();
                let Finished::AlreadyFinal(reported) = a.finish(&ending, now) else {
                    panic!("{name} changed a {:?} approval", before.status);
                };
                assert_eq!(reported, before, "{name}");
                assert_eq!(a, before, "{name}: the approval itself changed");
            }
        }
    }
}

#[test]
fn a_retry_is_the_same_outcome_by_the_same_person_and_nothing_else() {
    let mut approved = pending("deploy", "agent");
    approved.finish(&approve("alice"), Millis(super::CREATED.0 + 1));
    let cases = [
        ("same decision, same person", approve("alice"), true),
        (
            "same decision, other reason",
            {
                let Ending::Decided { verdict, by, .. } = approve("alice") else {
                    unreachable!()
                };
                Ending::Decided {
                    verdict,
                    by,
                    reason: "another reason".into(),
                }
            },
            true,
        ),
        ("same decision, other person", approve("bob"), false),
        ("other decision, same person", reject("alice"), false),
        ("a cancel by the same person", cancel("alice"), false),
    ];
    for (name, ending, want) in cases {
        assert_eq!(ending.is_repeat_of(&approved), want, "{name}");
    }
    let still_pending = pending("deploy", "agent");
    assert!(!approve("alice").is_repeat_of(&still_pending), "pending");
}
