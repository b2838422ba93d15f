package hflash.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The JSON subset a safetensors header needs, and nothing more: a strict RFC 8259 parser and a
 * string quoter. Package-private so the module stays dependency-free.
 *
 * <p>Values map to {@code Map<String,Object>} (insertion order kept, duplicate keys rejected),
 * {@code List<Object>}, {@code String}, {@code Long} (integers without fraction or exponent that fit
 * a long), {@code Double} (other numbers), {@code Boolean} and {@code null}. Whitespace may follow
 * the value (the safetensors header is space padded); anything else after it is an error.
 */
final class Json {

  /** Nesting limit: a safetensors header is 3 levels deep, so this only stops hostile input early. */
  static final int MAX_DEPTH = 64;

  private final String s;
  private int pos;

  private Json(String s) {
    this.s = s;
  }

  /**
   * Parses one JSON value.
   *
   * @throws IllegalArgumentException "malformed JSON at offset N: problem"
   */
  static Object parse(String text) {
    Json p = new Json(text);
    p.skipWhitespace();
    Object v = p.value();
    p.skipWhitespace();
    if (p.pos != text.length()) {
      throw p.error("unexpected content after the value");
    }
    return v;
  }

  /** {@code v} as a JSON string literal with quotes, escaping what RFC 8259 requires. */
  static String quote(String v) {
    StringBuilder b = new StringBuilder(v.length() + 2).append('"');
    for (int i = 0; i < v.length(); i++) {
      char c = v.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        case '\b' -> b.append("\\b");
        case '\f' -> b.append("\\f");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }

  /**
   * One value, nested containers included, without recursion: the open containers live on an explicit stack, so
   * the Java stack depth does not depend on the input (hostile nesting cannot overflow it) and the depth limit is
   * a plain check.
   */
  private Object value() {
    List<Object> open = new ArrayList<>(); // the open containers, outermost first: Map or List
    List<String> keys = new ArrayList<>(); // per open container: the key awaiting its value (null for arrays)
    List<Integer> keyPositions = new ArrayList<>(); // offset of that key, for the duplicate-key message
    while (true) {
      if (open.size() > MAX_DEPTH) {
        throw error("nesting deeper than " + MAX_DEPTH);
      }
      Object v;
      char c = start();
      if (c == '{' || c == '[') {
        pos++;
        skipWhitespace();
        if (peek() == (c == '{' ? '}' : ']')) {
          pos++;
          v = c == '{' ? new LinkedHashMap<String, Object>() : new ArrayList<Object>();
        } else {
          open.add(c == '{' ? new LinkedHashMap<String, Object>() : new ArrayList<Object>());
          keys.add(null);
          keyPositions.add(-1);
          if (c == '{') {
            key(keys, keyPositions);
          }
          continue;
        }
      } else {
        v = scalar(c);
      }
      // v is complete: add it to its container, then close every container that ends here
      while (true) {
        int top = open.size() - 1;
        if (top < 0) {
          return v;
        }
        boolean isObject = open.get(top) instanceof Map;
        add(open.get(top), keys.get(top), keyPositions.get(top), v);
        skipWhitespace();
        char d = peek();
        pos++;
        if (d == (isObject ? '}' : ']')) {
          v = open.remove(top);
          keys.remove(top);
          keyPositions.remove(top);
          continue;
        }
        if (d != ',') {
          pos--;
          throw error(isObject ? "expected ',' or '}'" : "expected ',' or ']'");
        }
        skipWhitespace();
        if (isObject) {
          key(keys, keyPositions);
        }
        break;
      }
    }
  }

  /** The first char of a value, after checking there is one. */
  private char start() {
    if (pos >= s.length()) {
      throw error("unexpected end of input");
    }
    return s.charAt(pos);
  }

  /** A string, literal or number starting with {@code c}. */
  private Object scalar(char c) {
    return switch (c) {
      case '"' -> string();
      case 't' -> literal("true", Boolean.TRUE);
      case 'f' -> literal("false", Boolean.FALSE);
      case 'n' -> literal("null", null);
      default -> {
        if (c == '-' || (c >= '0' && c <= '9')) {
          yield number();
        }
        throw error("unexpected character '" + c + "'");
      }
    };
  }

  /** Reads {@code "key" :} into the innermost open object's slot. */
  private void key(List<String> keys, List<Integer> keyPositions) {
    skipWhitespace();
    if (peek() != '"') {
      throw error("expected a string key");
    }
    int keyPos = pos;
    String key = string();
    skipWhitespace();
    expect(':');
    skipWhitespace();
    keys.set(keys.size() - 1, key);
    keyPositions.set(keyPositions.size() - 1, keyPos);
  }

  @SuppressWarnings("unchecked")
  private void add(Object container, String key, int keyPos, Object v) {
    if (container instanceof Map<?, ?> m) {
      Map<String, Object> map = (Map<String, Object>) m;
      if (map.containsKey(key)) {
        pos = keyPos;
        throw error("duplicate key " + quote(key));
      }
      map.put(key, v);
    } else {
      ((List<Object>) container).add(v);
    }
  }

  private String string() {
    pos++; // opening quote
    StringBuilder b = new StringBuilder();
    while (true) {
      if (pos >= s.length()) {
        throw error("unterminated string");
      }
      char c = s.charAt(pos++);
      if (c == '"') {
        return b.toString();
      }
      if (c < 0x20) {
        pos--;
        throw error("unescaped control character in string");
      }
      if (c != '\\') {
        b.append(c);
        continue;
      }
      if (pos >= s.length()) {
        throw error("unterminated string");
      }
      char e = s.charAt(pos++);
      switch (e) {
        case '"', '\\', '/' -> b.append(e);
        case 'b' -> b.append('\b');
        case 'f' -> b.append('\f');
        case 'n' -> b.append('\n');
        case 'r' -> b.append('\r');
        case 't' -> b.append('\t');
        case 'u' -> b.append(unicodeEscape());
        default -> {
          pos--;
          throw error("invalid escape '\\" + e + "'");
        }
      }
    }
  }

  private char unicodeEscape() {
    if (pos + 4 > s.length()) {
      throw error("truncated \\u escape");
    }
    int v = 0;
    for (int i = 0; i < 4; i++) {
      int d = Character.digit(s.charAt(pos + i), 16);
      if (d < 0) {
        throw error("invalid hex digit in \\u escape");
      }
      v = v * 16 + d;
    }
    pos += 4;
    return (char) v;
  }

  private Object number() {
    int start = pos;
    if (peek() == '-') {
      pos++;
    }
    if (peek() == '0') {
      pos++;
    } else if (!digits()) {
      throw error("invalid number");
    }
    boolean integral = true;
    if (peek() == '.') {
      pos++;
      integral = false;
      if (!digits()) {
        throw error("invalid number: no digits after '.'");
      }
    }
    if (peek() == 'e' || peek() == 'E') {
      pos++;
      integral = false;
      if (peek() == '+' || peek() == '-') {
        pos++;
      }
      if (!digits()) {
        throw error("invalid number: no digits in exponent");
      }
    }
    String text = s.substring(start, pos);
    if (integral) {
      try {
        return Long.parseLong(text);
      } catch (NumberFormatException tooLarge) {
        // falls through to a double, so a caller wanting a long reports the actual value
      }
    }
    return Double.parseDouble(text);
  }

  /** Consumes [0-9]+; false if there was no digit. */
  private boolean digits() {
    int start = pos;
    while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
      pos++;
    }
    return pos > start;
  }

  private Object literal(String word, Object v) {
    if (!s.startsWith(word, pos)) {
      throw error("invalid literal");
    }
    pos += word.length();
    return v;
  }

  private void expect(char c) {
    if (peek() != c) {
      throw error("expected '" + c + "'");
    }
    pos++;
  }

  /** The next char, or U+0000 at end of input (never valid at a position where we peek). */
  private char peek() {
    return pos < s.length() ? s.charAt(pos) : '\0';
  }

  private void skipWhitespace() {
    while (pos < s.length()) {
      char c = s.charAt(pos);
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
        return;
      }
      pos++;
    }
  }

  private IllegalArgumentException error(String problem) {
    return new IllegalArgumentException("malformed JSON at offset " + pos + ": " + problem);
  }
}
