/**
 * Decode attention over an {@code hflash.memory} cache with {@code hflash.tiles} kernels. The API
 * is {@code hflash.engine}: {@code DecodeAttention}, {@code AttentionConfig} and the sealed
 * {@code ModeConfig} family, {@code AttentionState}, {@code AttentionReport}, {@code Scheduler}.
 * The strategy interface ({@code hflash.engine.pass}) and one package per mode are internal.
 */
module hflash.engine {
  requires transitive hflash.memory;
  requires transitive hflash.tiles;

  exports hflash.engine;
}
