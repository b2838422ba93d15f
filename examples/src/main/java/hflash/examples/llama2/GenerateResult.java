package hflash.examples.llama2;

import java.util.Locale;

/**
 * The outcome of one generation.
 *
 * @param tokens every token id of the sequence, BOS and prompt included
 * @param promptTokens how many leading entries of {@code tokens} came from the prompt (BOS included)
 * @param text what was streamed: the decoded prompt and continuation (BOS prints nothing)
 * @param positions forward passes run (one per position)
 * @param seconds wall time of the decode loop
 * @param attention summed attention reports of every decode call
 * @param promptPositions positions of the prompt processed before the first sampled token (one prefill call
 *     per layer, or one forward pass each)
 * @param promptSeconds wall time until the logits of the last prompt position were ready
 */
public record GenerateResult(int[] tokens, int promptTokens, String text, int positions, double seconds,
    AttentionTotals attention, int promptPositions, double promptSeconds) {

  /** Prompt positions per second (the prefill's throughput). */
  public double promptTokensPerSecond() {
    return promptSeconds > 0 ? promptPositions / promptSeconds : 0;
  }

  /** Forward passes after the prompt, per second of the time after it. */
  public double generationTokensPerSecond() {
    double s = seconds - promptSeconds;
    return s > 0 ? (positions - promptPositions) / s : 0;
  }

  /** Forward passes per second, prompt positions included. */
  public double tokensPerSecond() {
    return seconds > 0 ? positions / seconds : 0;
  }

  /** Tokens sampled after the prompt. */
  public int generatedTokens() {
    return Math.max(0, tokens.length - promptTokens);
  }

  /** Three lines: speed, prompt and generation speeds apart, then the attention totals. */
  public String summary() {
    return String.format(Locale.ROOT, "%d positions (%d prompt, %d generated) in %.3f s: %.1f tokens/s%n"
        + "prompt: %d positions in %.3f s: %.1f tokens/s; generation: %d positions in %.3f s: %.1f tokens/s%n%s",
        positions, promptTokens, generatedTokens(), seconds, tokensPerSecond(), promptPositions, promptSeconds,
        promptTokensPerSecond(), positions - promptPositions, seconds - promptSeconds, generationTokensPerSecond(),
        attention.summary());
  }
}
