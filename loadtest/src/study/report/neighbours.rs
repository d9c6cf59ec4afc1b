//! The neighbours probe in the capacity section: its paragraph, and its share of a
//! scaling factor above the linear line.

use super::rate;
use crate::study::model::{NeighbourProbe, StudyResults};
use crate::study::neighbours::{INSTANCE_SHARE, NEIGHBOUR_SHARE};

/// The probe's paragraph, whenever it ran: instance 1's CPU per request alone and beside
/// busy neighbours, each fit round, the rounds left out and why, and what one operating
/// point can and cannot say about the capacity table.
pub(super) fn neighbours_paragraph(study: &StudyResults) -> Option<String> {
    let probe = study.neighbours.as_ref()?;
    let setting = format!(
        "Neighbours: straight at instance 1 (no nginx), {} for {:.0} s a round ({:.0} % of one \
         instance's capacity), with the other {} origins up and idle, and with each of them \
         served {} ({:.0} % of its part of the largest pool's capacity)",
        rate(probe.rate),
        probe.seconds,
        INSTANCE_SHARE * 100.0,
        probe.neighbours,
        rate(probe.neighbour_rate),
        NEIGHBOUR_SHARE * 100.0,
    );
    let left_out = left_out(probe);
    let Some(comparison) = probe.compare() else {
        return Some(format!(
            "{setting}: no ratio (too few rounds fit to compare, or none spent CPU).{left_out}"
        ));
    };
    let listed = |beside: bool| -> String {
        let values: Vec<String> = probe
            .fit_us(beside)
            .iter()
            .map(|us| format!("{us:.0}"))
            .collect();
        values.join(", ")
    };
    let verdict = if comparison.apart() {
        "every round alone above every round beside"
    } else if comparison.reversed() {
        "every round alone below every round beside: busy neighbours made it dearer here"
    } else {
        "the rounds overlap: the probe does not tell the two apart here"
    };
    Some(format!(
        "{setting}: one origin used {:.0} µs of CPU per request alone (rounds: {}) and {:.0} µs \
         beside them (rounds: {}), {:.2}× alone; {verdict}. One operating point, not each \
         pool's: the one-instance pool is searched with no other origin running, the largest \
         beside busy ones, each of its instances at its own rate.{left_out}",
        comparison.alone_us,
        listed(false),
        comparison.beside_us,
        listed(true),
        comparison.ratio,
    ))
}

/// The rounds the comparison leaves out, each with its figure and why.
fn left_out(probe: &NeighbourProbe) -> String {
    let rounds: Vec<String> = probe
        .rounds
        .iter()
        .enumerate()
        .filter_map(|(index, round)| {
            let why = round.unfit()?;
            let kind = if round.beside { "beside" } else { "alone" };
            let cpu = if round.requests == 0 {
                "no µs per request".to_owned()
            } else {
                format!("{:.0} µs", round.cpu_us)
            };
            Some(format!("round {} ({kind}, {cpu}: {why})", index + 1))
        })
        .collect();
    if rounds.is_empty() {
        String::new()
    } else {
        format!(" Left out: {}.", rounds.join("; "))
    }
}

/// What the probe says of a largest pool above the linear line from one instance: how
/// much of its factor the neighbours account for, on a model (a pool at its quota carries
/// in inverse proportion to its CPU per request), and what is left; or that the probe
/// could not tell. `None` without a probe or a largest pool above the line.
pub(super) fn neighbours_taken_out(study: &StudyResults) -> Option<String> {
    let probe = study.neighbours.as_ref()?;
    let (largest, factor) = study.scaling_factor()?;
    let (first, last) = (study.scaling.first()?, study.scaling.last()?);
    let line = largest as f64 / first.instances.max(1) as f64;
    if factor <= line * 1.1 {
        return None;
    }
    let comparison = probe.compare();
    if comparison.is_some_and(|comparison| comparison.reversed()) {
        return Some(
            "the neighbours probe (below) found one origin's CPU per request lower alone than \
             beside busy neighbours, which does not explain a pool above the line, so this study \
             does not say why it differs between pools"
                .into(),
        );
    }
    let Some(comparison) = comparison.filter(|comparison| comparison.apart()) else {
        return Some(
            "the neighbours probe (below) did not tell one origin's CPU per request alone from \
             beside busy neighbours, so this study does not say why it differs between pools"
                .into(),
        );
    };
    let (least, most) = (factor / comparison.high, factor / comparison.low);
    let rest = if least > line * 1.1 {
        format!(
            ", still above the line: each of its instances ran at {} at capacity against one \
             instance's {}, and an origin's CPU per request falls with its own rate too, which \
             the probe does not measure",
            rate(last.capacity_rps / largest as f64),
            rate(first.capacity_rps / first.instances.max(1) as f64)
        )
    } else {
        String::new()
    };
    Some(format!(
        "one origin alone spent {:.2}× ({:.2}× to {:.2}× between rounds) the CPU per request \
         it spent beside busy neighbours (the neighbours probe, below), and the one-instance \
         pool was searched with no other origin running. On a model in which a pool at its \
         quota carries in inverse proportion to its CPU per request, that leaves {largest} \
         instances at about {least:.1}× to {most:.1}× one{rest}",
        comparison.ratio, comparison.low, comparison.high,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::markdown;
    use super::super::tests::{probe, round, study, summary};

    #[test]
    fn the_neighbours_probe_is_reported_with_its_rounds() {
        let mut study = study();
        assert!(!markdown(&study).contains("Neighbours:"));
        study.neighbours = Some(probe());
        let md = markdown(&study);
        assert!(
            md.contains(
                "Neighbours: straight at instance 1 (no nginx), 400/s for 5 s a round (50 % of one \
                 instance's capacity), with the other 2 origins up and idle, and with each of them \
                 served 533/s (80 % of its part of the largest pool's capacity): one origin used 470 \
                 µs of CPU per request alone (rounds: 480, 460) and 310 µs beside them (rounds: 300, \
                 320), 1.52× alone; every round alone above every round beside. One operating point, \
                 not each pool's:"
            ),
            "{md}"
        );
        // A round near its quota, or from a stack not yet healthy, is left out and said.
        study.neighbours = Some(probe());
        if let Some(probe) = study.neighbours.as_mut() {
            probe.rounds[0].quota_use = Some(0.95);
            probe.rounds[1].started_healthy = false;
        }
        let md = markdown(&study);
        assert!(
            md.contains("alone (rounds: 460) and 320 µs beside them (rounds: 320), 1.44× alone;")
                && md.contains(
                    "Left out: round 1 (alone, 480 µs: instance 1 at 95 % of its quota); round 2 \
                     (beside, 300 µs: not from a healthy, idle stack)."
                )
                && md.contains("marked below: neighbours probe (1 of its rounds)."),
            "{md}"
        );
        // Rounds that overlap are said to.
        if let Some(probe) = study.neighbours.as_mut() {
            probe.rounds = vec![
                round(false, 460.0, 0.5),
                round(true, 470.0, 0.5),
                round(false, 500.0, 0.5),
                round(true, 440.0, 0.5),
            ];
        }
        assert!(markdown(&study).contains(
            "1.05× alone; the rounds overlap: the probe does not tell the two apart here."
        ));
    }

    #[test]
    fn the_neighbours_probe_is_taken_out_of_a_largest_pool_above_the_line_on_a_model() {
        let mut study = study();
        study.neighbours = Some(probe());
        let taken_out = "On a model in which a pool at its quota carries in inverse proportion";
        // Only 2 instances above the line (125 %), the largest (3) under it: nothing taken out.
        study.scaling[1].capacity_rps = 2000.0;
        study.scaling[1].steps[1] = summary(2000.0, 60.0, 0);
        assert!(!markdown(&study).contains(taken_out));
        // 3 instances at 3000/s against one at 800/s: 3.75×, over 1.60× to 1.44×.
        let mut study = self::study();
        study.neighbours = Some(probe());
        study.scaling[2].capacity_rps = 3000.0;
        study.scaling[2].steps[1] = summary(3000.0, 60.0, 0);
        let md = markdown(&study);
        assert!(
            md.contains(
                "3: 33 µs; one origin alone spent 1.52× (1.44× to 1.60× between rounds) the CPU per \
                 request it spent beside busy neighbours (the neighbours probe, below), and the \
                 one-instance pool was searched with no other origin running. On a model in which a \
                 pool at its quota carries in inverse proportion to its CPU per request, that leaves \
                 3 instances at about 2.3× to 2.6× one."
            ),
            "{md}"
        );
        // 3 instances at 4400/s: 5.5×, 3.4× to 3.8× once taken out, still above the line.
        study.scaling[2].capacity_rps = 4400.0;
        study.scaling[2].steps[1] = summary(4400.0, 60.0, 0);
        let md = markdown(&study);
        assert!(
            md.contains(
                "3 instances at about 3.4× to 3.8× one, still above the line: each of its instances \
                 ran at 1467/s at capacity against one instance's 800/s, and an origin's CPU per \
                 request falls with its own rate too, which the probe does not measure."
            ),
            "{md}"
        );
        // Rounds alone all below rounds beside take nothing out either, and say which way.
        if let Some(probe) = study.neighbours.as_mut() {
            probe.rounds = vec![round(false, 300.0, 0.5), round(true, 500.0, 0.5)];
        }
        let md = markdown(&study);
        assert!(
            !md.contains(taken_out)
                && md.contains("found one origin's CPU per request lower alone than beside busy")
                && md.contains(
                    "0.60× alone; every round alone below every round beside: busy neighbours made \
                 it dearer here."
                ),
            "{md}"
        );
        study.neighbours = Some(probe());
        // Rounds that overlap take nothing out, and say so.
        if let Some(probe) = study.neighbours.as_mut() {
            probe.rounds[1].cpu_us = 470.0;
        }
        let md = markdown(&study);
        assert!(
            !md.contains(taken_out)
                && md.contains(
                    "the neighbours probe (below) did not tell one origin's CPU per request alone \
                     from beside busy neighbours, so this study does not say why it differs between \
                     pools."
                ),
            "{md}"
        );
    }
}
