package hflash.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The header JSON parser: values, nesting without recursion, and one message shape for every error. */
class JsonTest {

  @Test
  void parsesNestedValuesInOrder() {
    Object v = Json.parse(" {\"a\": [1, -2.5e1, \"x\\u00e9\", true, null, {}], \"b\": {\"c\": []}} ");
    Map<String, Object> expected = new LinkedHashMap<>();
    java.util.ArrayList<Object> a = new java.util.ArrayList<>(List.of(1L, -25.0, "x\u00e9", true));
    a.add(null);
    a.add(Map.of());
    expected.put("a", a);
    expected.put("b", Map.of("c", List.of()));
    assertEquals(expected, v);
  }

  @Test
  void nestingAtTheLimitParses() {
    String text = "[".repeat(Json.MAX_DEPTH + 1) + "]".repeat(Json.MAX_DEPTH + 1);
    Object v = Json.parse(text);
    for (int i = 0; i < Json.MAX_DEPTH; i++) {
      v = ((List<?>) v).get(0);
    }
    assertEquals(List.of(), v);
  }

  /** A million open brackets: a recursive parser would overflow the stack; this one stops at the limit. */
  @Test
  void hostileNestingIsOneErrorNotAStackOverflow() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Json.parse("[".repeat(1_000_000)));
    assertEquals("malformed JSON at offset " + (Json.MAX_DEPTH + 1) + ": nesting deeper than " + Json.MAX_DEPTH,
        e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> Json.parse("{\"a\":".repeat(200_000)));
    assertEquals("malformed JSON at offset " + 5 * (Json.MAX_DEPTH + 1) + ": nesting deeper than " + Json.MAX_DEPTH,
        e.getMessage());
  }

  @Test
  void errorsNameTheOffsetAndTheProblem() {
    assertEquals("malformed JSON at offset 6: expected ',' or ']'",
        assertThrows(IllegalArgumentException.class, () -> Json.parse("[1, 2 3]")).getMessage());
    assertEquals("malformed JSON at offset 9: duplicate key \"k\"",
        assertThrows(IllegalArgumentException.class, () -> Json.parse("{\"k\":1 , \"k\":2}")).getMessage());
    assertEquals("malformed JSON at offset 3: unexpected content after the value",
        assertThrows(IllegalArgumentException.class, () -> Json.parse("{} x")).getMessage());
    assertEquals("malformed JSON at offset 1: expected a string key",
        assertThrows(IllegalArgumentException.class, () -> Json.parse("{1:2}")).getMessage());
  }
}
