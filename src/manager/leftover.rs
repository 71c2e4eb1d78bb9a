//! What to do with what an interrupted creation left: a pure decision over the record, the
//! forge's registration and the backend's instance, carried out by `ops::resume`.
//!
//! The rule it keeps: a registration whose instance may still appear (one exists, or the record
//! says it was asked for) is never revoked, since that would strand a booting instance with a
//! dead credential, nor one that is online or busy (some process holds its credential); and an
//! instance whose registration is gone can never come online.

/// What an earlier attempt left, as seen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// The record shows progress (a forge id or an instance id was recorded).
    pub recorded: bool,
    /// The record says the instance was asked for.
    pub requested: bool,
    /// The forge's registration of the runner: its id, and whether it is online or busy.
    pub registered: Option<(u64, bool)>,
    /// Whether the backend has an instance of the runner.
    pub instance: bool,
}

/// The next step of a resumed creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Registered and its instance exists: record both, it is started.
    Adopt { forge_id: u64 },
    /// Its instance may still come online (or is): leave it; the health check finds out.
    Wait,
    /// An instance whose registration is gone: delete it, forget the progress, start again.
    ReplaceInstance,
    /// A registration no instance will ever use: revoke it and start again (forgetting the
    /// recorded progress when there is some).
    Revoke { forge_id: u64 },
    /// Nothing usable was left: start again (forgetting the recorded progress, if any).
    StartAgain,
}

/// The step for what `left` shows.
pub fn step(left: Left) -> Step {
    match (left.registered, left.instance) {
        (Some((forge_id, _)), true) => Step::Adopt { forge_id },
        // Without a recorded registration, an instance is looked for only when the forge has
        // one: an unregistered instance then is nothing this attempt made.
        (None, true) if left.recorded => Step::ReplaceInstance,
        (None, _) => Step::StartAgain,
        // Online or busy: some process holds its credential. Never revoked.
        (Some((_, true)), false) => Step::Wait,
        (Some(_), false) if left.recorded && left.requested => Step::Wait,
        (Some((forge_id, false)), false) => Step::Revoke { forge_id },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Left> {
        let mut out = Vec::new();
        for recorded in [false, true] {
            for requested in [false, true] {
                for registered in [None, Some((7, false)), Some((7, true))] {
                    for instance in [false, true] {
                        out.push(Left {
                            recorded,
                            requested,
                            registered,
                            instance,
                        });
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_registration_whose_instance_may_still_appear_is_never_revoked() {
        for left in all() {
            let may_appear = left.instance || (left.recorded && left.requested);
            if may_appear {
                assert!(
                    !matches!(step(left), Step::Revoke { .. }),
                    "{left:?} → {:?}",
                    step(left)
                );
            }
        }
    }

    #[test]
    fn a_registered_runner_with_its_instance_is_adopted_and_nothing_else_is() {
        for left in all() {
            let both = left.registered.is_some() && left.instance;
            assert_eq!(
                matches!(step(left), Step::Adopt { forge_id: 7 }),
                both,
                "{left:?}"
            );
        }
    }

    #[test]
    fn an_instance_is_deleted_only_when_its_registration_is_gone() {
        for left in all() {
            if step(left) == Step::ReplaceInstance {
                assert!(
                    left.registered.is_none() && left.instance && left.recorded,
                    "{left:?}"
                );
            }
        }
    }

    #[test]
    fn an_online_or_busy_registration_is_never_revoked() {
        for left in all() {
            if matches!(left.registered, Some((_, true))) {
                assert!(!matches!(step(left), Step::Revoke { .. }), "{left:?}");
            }
        }
    }

    #[test]
    fn every_state_has_the_step_the_life_cycle_documents() {
        use Step::*;
        let reg = |in_use| Some((7, in_use));
        let cases = [
            // recorded, requested, registered, instance → step
            (true, false, None, false, StartAgain),
            (true, false, None, true, ReplaceInstance),
            (true, false, reg(false), false, Revoke { forge_id: 7 }),
            (true, true, reg(false), false, Wait),
            (true, true, None, true, ReplaceInstance),
            (false, false, None, true, StartAgain),
            (false, false, reg(false), false, Revoke { forge_id: 7 }),
            (false, false, reg(true), false, Wait),
            (false, false, reg(true), true, Adopt { forge_id: 7 }),
        ];
        for (recorded, requested, registered, instance, want) in cases {
            let left = Left {
                recorded,
                requested,
                registered,
                instance,
            };
            assert_eq!(step(left), want, "{left:?}");
        }
    }
}
