//! Chat template rendering: gemma3's published template, the built-in fallbacks, the real
//! model file (which carries no template), and Python-compatibility features of templates.

use std::path::PathBuf;

use tandem::chat::{ChatMessage, ChatTemplate, TemplateOrigin};
use tandem::gguf::{GgufFile, GgufWriter, Metadata, Value};

/// The chat template published with Gemma 3 instruction-tuned models (what gemma3 GGUF
/// files converted from them carry in `tokenizer.chat_template`), kept here as test data.
const GEMMA3_TEMPLATE: &str = r#"{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}"#;

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user("  Hi there  "),
        ChatMessage::assistant("Hello."),
        ChatMessage::user("What is 2+2?"),
    ]
}

/// Derived by reading the template: BOS, the system text plus a blank line folded into the
/// first user turn, contents trimmed, "assistant" renamed "model", each turn closed by
/// `<end_of_turn>` and a newline, then the opening of the model's turn.
const EXPECTED: &str = "<bos><start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n\
<start_of_turn>model\nHello.<end_of_turn>\n\
<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n\
<start_of_turn>model\n";

#[test]
fn gemma3_template_renders_system_user_assistant_user() {
    let t = ChatTemplate::new(GEMMA3_TEMPLATE, "<bos>", "<eos>").unwrap();
    assert_eq!(t.origin(), &TemplateOrigin::File);
    assert_eq!(t.render(&conversation(), true).unwrap(), EXPECTED);
    // Without the generation prompt the text stops after the last user turn.
    let no_prompt = t.render(&conversation(), false).unwrap();
    assert_eq!(
        no_prompt,
        EXPECTED.strip_suffix("<start_of_turn>model\n").unwrap()
    );
}

#[test]
fn gemma3_template_without_system_prompt() {
    let t = ChatTemplate::new(GEMMA3_TEMPLATE, "<bos>", "<eos>").unwrap();
    let text = t.render(&[ChatMessage::user("Hello")], true).unwrap();
    assert_eq!(
        text,
        "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn gemma3_template_rejects_non_alternating_roles() {
    let t = ChatTemplate::new(GEMMA3_TEMPLATE, "<bos>", "<eos>").unwrap();
    let err = t
        .render(&[ChatMessage::user("a"), ChatMessage::user("b")], true)
        .unwrap_err();
    assert!(format!("{err:#}").contains("must alternate"), "{err:#}");
}

#[test]
fn builtin_gemma_template_matches_the_published_one() {
    let builtin = ChatTemplate::builtin_for_arch("gemma3", "<bos>", "<eos>");
    assert_eq!(builtin.origin(), &TemplateOrigin::Builtin("gemma"));
    assert_eq!(builtin.render(&conversation(), true).unwrap(), EXPECTED);
    let published = ChatTemplate::new(GEMMA3_TEMPLATE, "<bos>", "<eos>").unwrap();
    let short = [ChatMessage::user("Hello")];
    assert_eq!(
        builtin.render(&short, true).unwrap(),
        published.render(&short, true).unwrap()
    );
}

#[test]
fn real_gemma3_file_falls_back_to_builtin_gemma_template() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/gemma-3-270m-q4_k_m.gguf");
    if !path.exists() {
        eprintln!("skipping: {} not found", path.display());
        return;
    }
    let file = GgufFile::open(&path).unwrap();
    let t = ChatTemplate::from_gguf(&file).unwrap();
    assert_eq!(t.origin(), &TemplateOrigin::Builtin("gemma"));
    assert_eq!(t.bos_token(), "<bos>");
    assert_eq!(t.eos_token(), "<eos>");
    assert_eq!(t.render(&conversation(), true).unwrap(), EXPECTED);
}

/// Writes a tensor-less GGUF with a tokenizer vocabulary and, optionally, a template.
fn write_gguf(dir: &tempfile::TempDir, arch: &str, template: Option<&str>) -> PathBuf {
    let mut meta = Metadata::new();
    meta.set("general.architecture", Value::String(arch.into()));
    meta.set(
        "tokenizer.ggml.tokens",
        Value::strings(["<unk>", "<s>", "</s>", "hello"]),
    );
    meta.set("tokenizer.ggml.bos_token_id", Value::U32(1));
    meta.set("tokenizer.ggml.eos_token_id", Value::U32(2));
    if let Some(t) = template {
        meta.set("tokenizer.chat_template", Value::String(t.into()));
    }
    let path = dir.path().join(format!("{arch}.gguf"));
    let out = std::fs::File::create(&path).unwrap();
    GgufWriter::new(out, &meta, &[]).unwrap();
    path
}

#[test]
fn file_template_is_used_with_its_special_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let source = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}";
    let path = write_gguf(&dir, "llama", Some(source));
    let t = ChatTemplate::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(t.origin(), &TemplateOrigin::File);
    let text = t.render(&[ChatMessage::user("hey")], false).unwrap();
    assert_eq!(text, "<s>[user]hey</s>");
}

#[test]
fn file_without_template_gets_chatml() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_gguf(&dir, "llama", None);
    let t = ChatTemplate::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(t.origin(), &TemplateOrigin::Builtin("chatml"));
    assert_eq!(
        t.render(&[ChatMessage::user("hey")], true).unwrap(),
        "<|im_start|>user\nhey<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn broken_file_template_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_gguf(&dir, "llama", Some("{% if %}"));
    let err = ChatTemplate::from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err();
    assert!(format!("{err:#}").contains("chat_template"), "{err:#}");
}

#[test]
fn python_string_methods_and_hf_whitespace_rules() {
    // `.strip()`, `.startswith()`, `.split()` come from pycompat; `trim_blocks` and
    // `lstrip_blocks` remove the newline after a block tag and the indentation before it.
    let source = "{% for m in messages %}\n    {% if m.content.strip().startswith('/') %}\ncmd:{{ m.content.strip()[1:].split(' ')[0] }}|\n    {% else %}\n{{ m.role | upper }}:{{ m.content | trim }}|\n    {% endif %}\n{% endfor %}";
    let t = ChatTemplate::new(source, "", "").unwrap();
    let text = t
        .render(
            &[
                ChatMessage::user("  /reset now "),
                ChatMessage::assistant(" ok "),
            ],
            false,
        )
        .unwrap();
    assert_eq!(text, "cmd:reset|\nASSISTANT:ok|\n");
}

#[test]
fn tojson_and_loop_controls_work() {
    let source = "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m | tojson }}{% endfor %}";
    let t = ChatTemplate::new(source, "", "").unwrap();
    let text = t
        .render(
            &[ChatMessage::user("a\"b"), ChatMessage::assistant("x")],
            false,
        )
        .unwrap();
    assert_eq!(text, r#"{"role":"user","content":"a\"b"}"#);
}
