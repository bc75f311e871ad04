//! `prompt_synthesis` with `mode: llm`: a model writes the dilemmas from seeded cues.
//!
//! Row *i* gets its tier from `tiers[i % len]` and a domain and a persona drawn from a
//! stream seeded by the stage seed and *i*. The cues fill a Jinja prompt (built in, or
//! `with.prompt_file`), which the model answers in its chat format, sampling from a stream
//! seeded by the stage seed, *i* and the attempt number. A reply is parsed into a dilemma
//! (labels and quotes dropped, cut after its last question mark); a row takes its first
//! attempt that parses and does not repeat a dilemma of an earlier row, so the output does
//! not depend on batching. Every reply is kept in the row cache under a key of what it
//! depends on (model, backend, prompt, sampling, seed), so raising `count` or resuming an
//! interrupted run generates only what is new.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dilemma_library::{DilemmaLibrary, Tier};
use super::{Dilemma, Params};
use crate::llm::chat::Message;
use crate::llm::generate::Request;
use crate::llm::sampling::Sampling;
use crate::prompt::render;
use crate::seed::SeededRng;
use crate::stage::{StageContext, StageError};
use crate::stages::persona_library::PersonaLibrary;
use crate::store::row_cache::RowKey;

/// The built-in request template.
pub const BUILTIN_PROMPT: &str = include_str!("../../../data/prompts/write_dilemma.jinja");

/// What the row cache keeps of one reply.
#[derive(Serialize, Deserialize)]
struct Reply {
    text: String,
}

/// What a reply depends on.
#[derive(Serialize)]
struct ReplyKey<'a> {
    model: &'a Value,
    backend: &'a str,
    prompt: &'a str,
    sampling: Sampling,
    max_new_tokens: usize,
    reply_prefix: &'a str,
    seed: u64,
}

impl RowKey for ReplyKey<'_> {
    const WHAT: &'static str = "prompt_synthesis/llm reply";
}

/// Row *i*'s cues.
struct Cues {
    tier: Tier,
    domain: String,
    persona: String,
    prompt: String,
}

fn tier_description(tier: Tier) -> &'static str {
    match tier {
        Tier::Professional => "a high-stakes decision someone must make in their professional role",
        Tier::Interpersonal => "a conflict between people who know each other well",
        Tier::Everyday => "a small, common choice in everyday life",
    }
}

/// The question a dilemma that lacks one ends with.
const DEFAULT_QUESTION: &str = "What should you do?";

/// The dilemma in a model's reply, or `None` when it has none: the first paragraph,
/// without a leading label or quotes, cut after its last question, or — when it asks none
/// but has at least two whole sentences — cut after its last sentence and ending with
/// "What should you do?".
pub fn parse_reply(reply: &str) -> Option<String> {
    let mut text = reply.trim().split("\n\n").next().unwrap_or("");
    // Drop a leading label such as `Dilemma:` or `**Scenario:**`.
    if let Some((head, rest)) = text.split_once(':')
        && head.len() <= 24
        && !head.contains('?')
        && head
            .trim_matches(|c: char| c == '*' || c == '#' || c.is_whitespace())
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ')
    {
        text = rest;
    }
    let text = text.trim_matches(|c: char| c == '"' || c == '*' || c.is_whitespace());
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let dilemma = match text.rfind('?') {
        Some(end) => text[..=end].to_string(),
        None => {
            let ends: Vec<usize> = text.match_indices(['.', '!']).map(|(i, _)| i).collect();
            if ends.len() < 2 {
                return None;
            }
            format!("{} {DEFAULT_QUESTION}", &text[..=ends[ends.len() - 1]])
        }
    };
    (dilemma.len() >= 60).then_some(dilemma)
}

/// A dilemma's text reduced for duplicate detection.
fn normalised(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Writes `params.count` distinct dilemmas with the model `params.model`.
pub fn write(
    library: &DilemmaLibrary,
    params: &Params,
    ctx: &StageContext,
) -> Result<Vec<Dilemma>, StageError> {
    let name = params
        .model
        .as_deref()
        .ok_or_else(|| StageError::Failed("`mode: llm` needs `model`".into()))?;
    let writer = Writer {
        params,
        ctx,
        name,
        cues: cues(library, params, ctx)?,
        identity: ctx.models.identity_seen(name),
        backend: ctx.models.backend().map_err(|e| failed(name, e))?.name,
        sampling: Sampling {
            temperature: params.temperature,
            top_k: 0,
            top_p: params.top_p,
        },
    };
    // replies[i][a]: attempt a of row i, once generated or read from the cache.
    let mut replies: Vec<Vec<String>> = vec![Vec::new(); params.count];
    let mut generated = vec![false; params.count];
    ctx.progress.set_total(params.count as u64);
    let mut reported = 0;
    loop {
        ctx.check_cancelled()?;
        let (chosen, need) = resolve(&replies, params.max_attempts);
        let done = chosen.iter().flatten().count() as u64;
        // A row's choice can go to an earlier row that finds it later: count only gains.
        if done > reported {
            ctx.progress.advance(done - reported);
            reported = done;
        }
        if need.is_empty() {
            for (i, was_generated) in generated.iter().enumerate() {
                ctx.rows.count(!was_generated && chosen[i].is_some());
            }
            return writer.dilemmas(chosen, &replies);
        }
        writer.next_attempts(&need, &mut replies, &mut generated)?;
    }
}

/// Row *i*'s cues, drawn from the stage seed and *i*, and its prompt.
fn cues(
    library: &DilemmaLibrary,
    params: &Params,
    ctx: &StageContext,
) -> Result<Vec<Cues>, StageError> {
    let prompt_source = crate::stages::read_template(ctx, &params.prompt_file, BUILTIN_PROMPT)?;
    let mut domains: Vec<String> = if params.domains.is_empty() {
        library.templates.iter().map(|t| t.domain.clone()).collect()
    } else {
        params.domains.clone()
    };
    domains.sort();
    domains.dedup();
    let personas = PersonaLibrary::builtin();
    (0..params.count)
        .map(|i| {
            let tier = params.tiers[i % params.tiers.len()];
            let mut rng = SeededRng::new(ctx.seed, &[b"llm-cues", &(i as u64).to_le_bytes()]);
            let domain = domains[rng.below(domains.len())].clone();
            let persona = &personas.personas[rng.below(personas.personas.len())];
            let prompt = render(
                &prompt_source,
                minijinja::context! {
                    tier => tier.name(),
                    tier_description => tier_description(tier),
                    domain => domain.clone(),
                    persona_name => persona.name.clone(),
                    persona_profile => personas.profile(persona).replace("Your ", "Their "),
                },
            )?;
            Ok(Cues {
                tier,
                domain,
                persona: persona.id.clone(),
                prompt,
            })
        })
        .collect()
}

fn failed(name: &str, e: crate::llm::LlmError) -> StageError {
    StageError::Failed(format!("model `{name}`: {e}"))
}

/// What every reply of a stage shares.
struct Writer<'a> {
    params: &'a Params,
    ctx: &'a StageContext<'a>,
    /// The spec model writing.
    name: &'a str,
    cues: Vec<Cues>,
    identity: Value,
    backend: &'static str,
    sampling: Sampling,
}

impl Writer<'_> {
    fn reply_key(&self, i: usize, attempt: usize) -> ReplyKey<'_> {
        ReplyKey {
            model: &self.identity,
            backend: self.backend,
            prompt: &self.cues[i].prompt,
            sampling: self.sampling,
            max_new_tokens: self.params.max_new_tokens,
            reply_prefix: &self.params.reply_prefix,
            seed: reply_seed(self.ctx.seed, i, attempt),
        }
    }

    /// The next attempt of every row of `need`: from the cache, else generated (and
    /// cached), marking the rows that generated one.
    fn next_attempts(
        &self,
        need: &[usize],
        replies: &mut [Vec<String>],
        generated: &mut [bool],
    ) -> Result<(), StageError> {
        let mut missing = Vec::new();
        for &i in need {
            match self
                .ctx
                .rows
                .get::<_, Reply>(&self.reply_key(i, replies[i].len()))
            {
                Some(reply) => replies[i].push(reply.text),
                None => missing.push(i),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let model = self
            .ctx
            .models
            .load(self.name)
            .map_err(|e| failed(self.name, e))?;
        for chunk in missing.chunks(self.params.batch_size.max(1)) {
            self.ctx.check_cancelled()?;
            let requests = chunk
                .iter()
                .map(|&i| {
                    let mut text = model
                        .chat_prompt(&[Message::new("user", &self.cues[i].prompt)])
                        .map_err(|e| failed(self.name, e))?;
                    text.push_str(&self.params.reply_prefix);
                    Ok(Request {
                        prompt: model
                            .tokenizer
                            .encode(&text)
                            .map_err(|e| failed(self.name, e))?,
                        sampling: self.sampling,
                        max_new_tokens: self.params.max_new_tokens,
                        seed: reply_seed(self.ctx.seed, i, replies[i].len()),
                        // The dilemma is the first paragraph.
                        stop_strings: vec!["\n\n".into()],
                        top_logprobs: 0,
                    })
                })
                .collect::<Result<Vec<_>, StageError>>()?;
            let completions = model
                .generate_while(&requests, || !self.ctx.is_cancelled())
                .map_err(|e| failed(self.name, e))?;
            self.ctx.check_cancelled()?;
            for (&i, completion) in chunk.iter().zip(completions) {
                let reply = Reply {
                    text: format!("{}{}", self.params.reply_prefix, completion.text),
                };
                self.ctx
                    .rows
                    .put(&self.reply_key(i, replies[i].len()), &reply)?;
                replies[i].push(reply.text);
                generated[i] = true;
            }
        }
        Ok(())
    }

    /// The output rows, once every row has its choice; a row without one fails the stage.
    fn dilemmas(
        &self,
        chosen: Vec<Option<(usize, String)>>,
        replies: &[Vec<String>],
    ) -> Result<Vec<Dilemma>, StageError> {
        chosen
            .into_iter()
            .enumerate()
            .map(|(i, choice)| {
                let Some((_, text)) = choice else {
                    let last = replies[i].last().map_or("", String::as_str);
                    return Err(StageError::Failed(format!(
                        "row {i}: after {} attempt(s) the model wrote no usable, new dilemma \
                         (a reply needs a first paragraph of 60 characters with a question or \
                         two sentences; the last was {:?}); raise `max_attempts`, lower \
                         `temperature` or use a larger model",
                        self.params.max_attempts,
                        last.chars().take(200).collect::<String>()
                    )));
                };
                let cue = &self.cues[i];
                let id = blake3::hash(format!("{}\n{}\n{text}", cue.tier, cue.domain).as_bytes())
                    .to_hex()[..12]
                    .to_string();
                Ok(Dilemma {
                    id,
                    tier: cue.tier,
                    domain: cue.domain.clone(),
                    template: format!("llm:{}", cue.persona),
                    text,
                })
            })
            .collect()
    }
}

/// The sampling seed of attempt `attempt` of row `row`.
fn reply_seed(seed: u64, row: usize, attempt: usize) -> u64 {
    SeededRng::new(
        seed,
        &[
            b"llm-reply",
            &(row as u64).to_le_bytes(),
            &(attempt as u64).to_le_bytes(),
        ],
    )
    .next_u64()
}

/// Each row's first reply that parses and repeats no earlier row's choice, with its
/// attempt number, and the rows that need another attempt to have one.
#[allow(clippy::type_complexity)]
fn resolve(
    replies: &[Vec<String>],
    max_attempts: usize,
) -> (Vec<Option<(usize, String)>>, Vec<usize>) {
    let mut seen = HashSet::new();
    let mut chosen = Vec::with_capacity(replies.len());
    let mut need = Vec::new();
    for (i, attempts) in replies.iter().enumerate() {
        let pick = attempts.iter().enumerate().find_map(|(a, reply)| {
            let text = parse_reply(reply)?;
            (!seen.contains(&normalised(&text))).then_some((a, text))
        });
        match &pick {
            Some((_, text)) => {
                seen.insert(normalised(text));
            }
            None if attempts.len() < max_attempts => need.push(i),
            None => {}
        }
        chosen.push(pick);
    }
    (chosen, need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_into_dilemmas() {
        assert_eq!(
            parse_reply(
                "Dilemma: \"You manage a small clinic and must choose who gets the last vaccine dose. Do you?\" Thanks!"
            ),
            Some(
                "You manage a small clinic and must choose who gets the last vaccine dose. Do you?"
                    .into()
            )
        );
        assert_eq!(
            parse_reply(
                "**Scenario:**\n You found a wallet\n with cash and an ID card near your door. Keep it?"
            ),
            Some("You found a wallet with cash and an ID card near your door. Keep it?".into())
        );
        assert_eq!(
            parse_reply(
                "You own a bakery. A regular asks for credit again.\n\nThis dilemma is hard."
            ),
            Some("You own a bakery. A regular asks for credit again. What should you do?".into()),
            "a first paragraph without a question gets the default one"
        );
        assert_eq!(
            parse_reply("One sentence only and no question here at all, sadly"),
            None
        );
        assert_eq!(parse_reply("Short?"), None);
    }

    #[test]
    fn rows_take_their_first_new_parsable_reply() {
        let q = |s: &str| {
            format!("You must decide something hard about {s} today, with no time left. What now?")
        };
        let replies = vec![
            vec!["nonsense".to_string(), q("a")],
            vec![q("a"), q("b")],
            vec!["nonsense".to_string()],
        ];
        let (chosen, need) = resolve(&replies, 3);
        assert_eq!(chosen[0].as_ref().unwrap().0, 1);
        assert_eq!(
            chosen[1].as_ref().unwrap().0,
            1,
            "row 1 skips row 0's dilemma"
        );
        assert!(chosen[2].is_none());
        assert_eq!(need, vec![2]);
        let (_, need) = resolve(&replies, 1);
        assert!(need.is_empty(), "no attempts left");
    }
}
