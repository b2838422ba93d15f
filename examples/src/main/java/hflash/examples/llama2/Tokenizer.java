package hflash.examples.llama2;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The llama2.c byte-pair tokenizer ({@code tokenizer.bin} / {@code tok512.bin}), encoding and decoding exactly as
 * {@code run.c} does.
 *
 * <p>File format (little-endian): int32 {@code max_token_length}, then per token: float32 merge score, int32 byte
 * length, the bytes. The file does not store the token count; {@link #load(Path, int)} reads to the end and checks
 * the count against the model's {@code vocab_size}.
 *
 * <p>Pieces are held as ISO-8859-1 strings (one char per byte), so that string concatenation is byte concatenation
 * and pieces that are not valid UTF-8 on their own (byte-fallback tokens, split code points) survive unchanged.
 * Immutable and thread-safe.
 */
public final class Tokenizer {

  /** Beginning-of-sequence token id. */
  public static final int BOS = 1;
  /** End-of-sequence token id. */
  public static final int EOS = 2;
  /** Id of the first byte-fallback token {@code <0x00>}; byte b is id {@code b + 3}. */
  static final int BYTE_FALLBACK_BASE = 3;
  /** Fewest tokens {@link #encode} can work with: the three specials and the 256 byte-fallback tokens. */
  static final int MIN_VOCAB = BYTE_FALLBACK_BASE + 256;
  /** Largest file {@link #load} reads into one array. */
  static final long MAX_FILE_BYTES = Integer.MAX_VALUE - 8;

  private final String[] pieces; // [vocab] raw bytes as ISO-8859-1
  private final float[] scores; // [vocab] merge scores, higher merges first
  private final Map<String, Integer> ids; // piece -> lowest id with that piece
  private final int maxTokenLength;
  private final byte[][] printed; // [vocab] bytes written when the previous token is not BOS
  private final byte[][] printedAfterBos; // [vocab] same, leading space stripped

  private Tokenizer(String[] pieces, float[] scores, int maxTokenLength) {
    this.pieces = pieces;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    this.ids = new HashMap<>(pieces.length * 2);
    for (int i = 0; i < pieces.length; i++) {
      ids.putIfAbsent(pieces[i], i);
    }
    this.printed = new byte[pieces.length][];
    this.printedAfterBos = new byte[pieces.length][];
    for (int i = 0; i < pieces.length; i++) {
      printed[i] = printable(pieces[i]);
      printedAfterBos[i] = pieces[i].startsWith(" ") ? printable(pieces[i].substring(1)) : printed[i];
    }
  }

  /**
   * Loads a llama2.c tokenizer file and checks that it has {@code vocabSize} tokens.
   *
   * <p>Besides the format, the vocabulary must hold what {@link #encode} relies on, as {@code run.c} assumes without
   * checking: at least {@link #MIN_VOCAB} tokens (ids 3..258 are the byte fallbacks) and a {@code " "} piece (the
   * dummy prefix). A file that lacks them is rejected here rather than failing later inside encode.
   *
   * @throws IllegalArgumentException if the file is truncated or corrupt, or its token count differs from
   *     {@code vocabSize}, or it lacks the byte-fallback block or the {@code " "} piece
   */
  public static Tokenizer load(Path file, int vocabSize) throws IOException {
    if (vocabSize <= 0) {
      throw new IllegalArgumentException("vocabSize must be positive: " + vocabSize);
    }
    long size = Files.size(file);
    if (size > MAX_FILE_BYTES) {
      throw invalid(file, "file larger than " + MAX_FILE_BYTES + " bytes: " + size);
    }
    ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    List<String> pieces = new ArrayList<>(Math.min(vocabSize, 1 << 16));
    List<Float> scores = new ArrayList<>(Math.min(vocabSize, 1 << 16));
    int maxLen;
    try {
      maxLen = buf.getInt();
      if (maxLen <= 0) {
        throw invalid(file, "max_token_length must be positive: " + maxLen);
      }
      while (buf.hasRemaining()) {
        float score = buf.getFloat();
        int len = buf.getInt();
        if (len < 0 || len > maxLen) {
          throw invalid(file, "token " + pieces.size() + " length out of range [0, " + maxLen + "]: " + len);
        }
        if (len > buf.remaining()) { // checked before the array: a lying length must not allocate
          throw invalid(file, "truncated after " + pieces.size() + " tokens");
        }
        byte[] bytes = new byte[len];
        buf.get(bytes);
        pieces.add(new String(bytes, StandardCharsets.ISO_8859_1));
        scores.add(score);
      }
    } catch (BufferUnderflowException e) {
      throw invalid(file, "truncated after " + pieces.size() + " tokens");
    }
    if (pieces.size() != vocabSize) {
      throw new IllegalArgumentException(
          "tokenizer has " + pieces.size() + " tokens but the model expects " + vocabSize + ": " + file);
    }
    if (vocabSize < MIN_VOCAB) {
      throw invalid(file, "vocabulary smaller than the " + MIN_VOCAB
          + " tokens encode needs (3 special, 256 byte fallback): " + vocabSize);
    }
    if (!pieces.contains(" ")) {
      throw invalid(file, "no ' ' piece (the dummy prefix encode puts before the text)");
    }
    float[] s = new float[scores.size()];
    for (int i = 0; i < s.length; i++) {
      s[i] = scores.get(i);
    }
    return new Tokenizer(pieces.toArray(String[]::new), s, maxLen);
  }

  /** Number of tokens. */
  public int vocabSize() {
    return pieces.length;
  }

  /** Longest piece in bytes, from the file header. */
  public int maxTokenLength() {
    return maxTokenLength;
  }

  /** The raw piece of a token, decoded as UTF-8 (byte-fallback tokens read {@code <0xXX>}). */
  public String piece(int id) {
    return new String(pieces[id].getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
  }

  /**
   * Encodes text as {@code run.c} does: optional BOS, a dummy-prefix space token when the text is non-empty, one
   * token per UTF-8 code point (byte fallback {@code <0xXX>} = byte + 3 when the code point is not in the vocab),
   * then repeated merges of the adjacent pair whose merged piece has the best score.
   */
  public int[] encode(String text, boolean bos) {
    byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
    int[] tokens = new int[utf8.length + 2]; // worst case: bos + prefix + one token per byte
    int n = 0;
    if (bos) {
      tokens[n++] = BOS;
    }
    if (utf8.length > 0) {
      tokens[n++] = lookup(" ");
    }
    int start = 0;
    for (int i = 0; i < utf8.length; i++) {
      boolean continues = i + 1 < utf8.length && (utf8[i + 1] & 0xC0) == 0x80 && i + 1 - start < 4;
      if (continues) {
        continue; // keep collecting the bytes of this code point (at most 4)
      }
      Integer id = ids.get(new String(utf8, start, i + 1 - start, StandardCharsets.ISO_8859_1));
      if (id != null) {
        tokens[n++] = id;
      } else {
        for (int b = start; b <= i; b++) {
          tokens[n++] = (utf8[b] & 0xFF) + BYTE_FALLBACK_BASE;
        }
      }
      start = i + 1;
    }
    return Arrays.copyOf(tokens, merge(tokens, n));
  }

  /** Greedy BPE: merges the best-scoring adjacent pair until none merges; returns the new token count. */
  private int merge(int[] tokens, int n) {
    while (true) {
      float bestScore = -1e10f;
      int bestId = -1, bestIdx = -1;
      for (int i = 0; i + 1 < n; i++) {
        Integer id = ids.get(pieces[tokens[i]] + pieces[tokens[i + 1]]);
        if (id != null && scores[id] > bestScore) {
          bestScore = scores[id];
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) {
        return n;
      }
      tokens[bestIdx] = bestId;
      System.arraycopy(tokens, bestIdx + 2, tokens, bestIdx + 1, n - bestIdx - 2);
      n--;
    }
  }

  private int lookup(String piece) {
    Integer id = ids.get(piece);
    if (id == null) {
      throw new IllegalStateException("tokenizer has no piece '" + piece + "' (needed by encode)");
    }
    return id;
  }

  /**
   * The bytes to print for {@code token} following {@code prev}, as {@code run.c}'s decode + safe_printf: the
   * leading space is stripped after BOS, {@code <0xXX>} becomes the raw byte. Returns a shared array: callers
   * must not modify it. No allocation, so the decode loop can stream tokens in the steady state.
   */
  byte[] printedBytes(int prev, int token) {
    return prev == BOS ? printedAfterBos[token] : printed[token];
  }

  /** Decodes one token following {@code prev} (see {@link #decode(int[])}). */
  public String decode(int prev, int token) {
    return new String(printedBytes(prev, token), StandardCharsets.UTF_8);
  }

  /**
   * Decodes a token sequence as {@code run.c} prints it: BOS itself prints nothing, and the token after it loses
   * its leading space.
   */
  public String decode(int[] tokens) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (int i = 0; i < tokens.length; i++) {
      int prev = i == 0 ? -1 : tokens[i - 1];
      if (tokens[i] != BOS) {
        out.writeBytes(printedBytes(prev, tokens[i]));
      }
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  /**
   * What run.c prints for a piece. A {@code <0xXX>} piece is its raw byte. A single-byte piece that is a control
   * character other than whitespace prints nothing (safe_printf). Unlike safe_printf, bytes {@code >= 0x80} are kept,
   * so that a code point spelled in byte-fallback tokens reassembles into valid UTF-8 on the output stream.
   */
  private static byte[] printable(String piece) {
    byte[] raw = piece.getBytes(StandardCharsets.ISO_8859_1);
    if (raw.length == 6 && piece.startsWith("<0x") && piece.charAt(5) == '>') {
      int hi = Character.digit(piece.charAt(3), 16), lo = Character.digit(piece.charAt(4), 16);
      if (hi >= 0 && lo >= 0) {
        raw = new byte[] {(byte) (hi * 16 + lo)};
      }
    }
    if (raw.length == 1) {
      int b = raw[0] & 0xFF;
      boolean space = b == ' ' || (b >= '\t' && b <= '\r');
      if (!space && (b < 0x20 || b == 0x7F)) {
        return new byte[0];
      }
    }
    return raw;
  }

  private static IllegalArgumentException invalid(Path file, String problem) {
    return new IllegalArgumentException("invalid llama2.c tokenizer " + file + ": " + problem);
  }
}
