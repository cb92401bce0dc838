//! Check `acked_readback`: every acknowledged write and record append reads back through the
//! client at the end of the run.
//!
//! Must always hold. GFS §2.7.2 and §3.3: a successful mutation is durable on every replica and a
//! successful record append is readable at the offset returned. The only acceptable other value at
//! a byte is one written by a mutation that may have come after (see `model`).

use super::model::Expectation;
use super::{context, render_mismatches, Inputs, Violation};

pub const NAME: &str = "acked_readback";

pub fn check(inputs: &Inputs, exps: &[Expectation]) -> Option<Violation> {
    let mut mismatches = Vec::new();
    for e in exps {
        match inputs.state.files.get(&e.path) {
            None => mismatches.push((
                e.op,
                format!("{} is missing from the final listing", e.path),
            )),
            Some(Err(why)) => mismatches.push((e.op, format!("reading {} failed: {why}", e.path))),
            Some(Ok(bytes)) => {
                let found = bytes.get(e.offset);
                if !found.is_some_and(|b| e.allowed.contains(&b)) {
                    let found = found.map_or("end of file".into(), |b| format!("{b:#04x}"));
                    mismatches.push((
                        e.op,
                        format!(
                            "{} @{}: read {found}, expected one of {:02x?}; {}",
                            e.path,
                            e.offset,
                            e.allowed,
                            context(bytes, e.offset)
                        ),
                    ));
                }
            }
        }
    }
    (!mismatches.is_empty()).then(|| Violation {
        check: NAME,
        report: format!(
            "{} acknowledged bytes do not read back through the client:\n{}",
            mismatches.len(),
            render_mismatches(inputs.history, &mismatches, 5)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::{expectations, tests::write};
    use super::super::{test_inputs, FinalState};
    use super::*;
    use crate::history::OpResult;

    #[test]
    fn catches_a_lost_write_and_accepts_a_kept_one() {
        let history = vec![write(0, 2, b"ab", (0, 10), OpResult::Ok)];
        let exps = expectations(&history);
        let mut state = FinalState::default();
        state
            .files
            .insert("/f".into(), Ok(b"\0\0ab".to_vec().into()));
        assert_eq!(check(&test_inputs(&history, &state, 64, 3, 0), &exps), None);
        state
            .files
            .insert("/f".into(), Ok(b"\0\0aX".to_vec().into()));
        let v = check(&test_inputs(&history, &state, 64, 3, 0), &exps)
            .expect("a changed byte is caught");
        assert!(v.report.contains("/f @3: read 0x58"), "{}", v.report);
        assert!(v.report.contains("op #0"), "{}", v.report);
        state
            .files
            .insert("/f".into(), Ok(b"\0\0a".to_vec().into()));
        assert!(check(&test_inputs(&history, &state, 64, 3, 0), &exps)
            .unwrap()
            .report
            .contains("end of file"));
        state.files.clear();
        assert!(check(&test_inputs(&history, &state, 64, 3, 0), &exps)
            .unwrap()
            .report
            .contains("missing"));
    }
}
