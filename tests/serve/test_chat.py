"""lumi_chat_<preset> driven through stdin, as a script would: a conversation with commands, checked line by line.

  python3 test_chat.py --chat lumi_chat_nano --generate lumi_generate_nano --checkpoint DIR --tokenizer DIR --work DIR
"""
import argparse
import json
import os
import signal
import subprocess
import time


def main():
    parser = argparse.ArgumentParser()
    for name in ("chat", "generate", "checkpoint", "tokenizer", "work"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    saved = os.path.join(args.work, "conversation.json")
    reference = os.path.join(args.work, "chat_reference.jsonl")
    subprocess.run([args.generate, "--set", f"checkpoint={args.checkpoint}", "--set", f"tokenizer={args.tokenizer}",
                    "--set", "prompt_template=instruct", "--set", 'prompts=["Name a colour."]',
                    "--set", "sampling.max_new_tokens=20", "--set", f"output={reference}"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(reference) as f:
        expected = json.loads(f.readline())["completion"]

    script = "\n".join([
        "/set temperature=0",
        "/set max_new_tokens=20",
        "Name a colour.",
        "/set temprature=1",
        "/save " + saved,
        "/frobnicate",
        "/system Answer briefly.",
        "Write a line of verse.",
        "/reset",
        "/exit",
        "never read",
    ]) + "\n"
    run = subprocess.run([args.chat, "--set", f"checkpoint={args.checkpoint}", "--set", f"tokenizer={args.tokenizer}"],
                         input=script, capture_output=True, text=True, timeout=300)
    out = run.stdout
    assert run.returncode == 0, (run.returncode, out, run.stderr)
    lines = out.splitlines()
    # Plain lines: no prompt, no banner (stdin is not a terminal).
    assert not any(line.startswith("> ") or "lumi_chat:" in line for line in lines), out
    assert lines[0].startswith("(sampling: ") and '"temperature":0' in lines[0].replace(" ", ""), lines[0]
    assert '"max_new_tokens":20' in lines[1].replace(" ", ""), lines[1]
    # The greedy answer equals lumi_generate's for the same prompt and template.
    assert lines[2] == expected, (lines[2], expected)
    assert "error: /set: temprature: unknown key, did you mean 'temperature'?" in out, out
    assert f"(saved 2 messages to {saved})" in out, out
    assert "unknown command '/frobnicate'" in out, out
    assert "(system message set)" in out and "(the conversation is cleared)" in out, out
    assert "never read" not in out
    with open(saved) as f:
        conversation = json.load(f)
    assert conversation["chat_template"] == "instruct", conversation
    assert conversation["messages"] == [{"role": "user", "content": "Name a colour."},
                                        {"role": "assistant", "content": expected}], conversation
    # End of input exits too.
    run = subprocess.run([args.chat, "--set", f"checkpoint={args.checkpoint}", "--set", f"tokenizer={args.tokenizer}"],
                         input="Hello\n", capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip(), (run.returncode, run.stdout, run.stderr)
    # Ctrl-C (SIGINT) stops the answer being written, not the program: the next command still runs.
    proc = subprocess.Popen([args.chat, "--set", f"checkpoint={args.checkpoint}", "--set",
                             f"tokenizer={args.tokenizer}", "--set", "sampling.max_new_tokens=200",
                             "--set", "sampling.stop_at_eos=false", "--set", "sampling.temperature=1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write("/set seed=5\n")  # its answer means the model is loaded and Ctrl-C is handled
    proc.stdin.flush()
    ready = proc.stdout.readline()
    assert ready.startswith("(sampling: "), ready
    proc.stdin.write("Write a very long story.\n")
    proc.stdin.flush()
    time.sleep(0.15)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate("/save " + saved + "\n/exit\n", timeout=120)
    assert proc.returncode == 0, (proc.returncode, out, err)
    assert "(stopped)" in out, out
    with open(saved) as f:
        kept = json.load(f)["messages"]
    assert len(kept) == 2 and kept[0]["content"] == "Write a very long story.", kept
    print("test_chat: scripted conversation, commands, /save, Ctrl-C and EOF all behave")


if __name__ == "__main__":
    main()
