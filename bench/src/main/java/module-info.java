/**
 * Measuring hflash without a front end: workloads (random and structured), the decode, prefill and
 * decode-loop bench harnesses, the streaming-read and FMA probes (roofline), float64 oracles,
 * trace evaluation, the claims analysis and SVG plots. Results are records and plain maps; a
 * front end formats them (the CLI writes the maps as JSON). JDK only; the Vector API is optional
 * (the probes use it when the incubator module is loaded, as the kernels do).
 */
module hflash.bench {
  requires transitive hflash.engine;
  requires transitive hflash.io;
  requires transitive hflash.memory;
  requires transitive hflash.tiles;
  requires static jdk.incubator.vector;
  requires java.management;
  requires jdk.management;

  exports hflash.bench;

  uses hflash.bench.TextGenerator;
}
