package hflash.examples.llama2;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;

/** One greedy generation from {@code reference.json}: llama2.c run.c's output at temperature 0. */
record Reference(String prompt, int steps, String source, int[] tokens, String text) {

  @Override
  public String toString() {
    return "steps=" + steps + " prompt='" + prompt + "'"; // the parameterized test name
  }

  /** All entries of the file's "greedy" array, in file order. */
  @SuppressWarnings("unchecked")
  static List<Reference> greedy() {
    String json;
    try {
      json = Files.readString(SharedData.reference());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Map<String, Object> root = (Map<String, Object>) MiniJson.parse(json);
    return ((List<Object>) root.get("greedy")).stream().map(o -> {
      Map<String, Object> m = (Map<String, Object>) o;
      List<Object> ids = (List<Object>) m.get("tokens");
      int[] tokens = ids.stream().mapToInt(d -> ((Double) d).intValue()).toArray();
      return new Reference((String) m.get("prompt"), ((Double) m.get("steps")).intValue(), (String) m.get("source"),
          tokens, (String) m.get("text"));
    }).toList();
  }
}
