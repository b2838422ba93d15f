/**
 * File formats: safetensors tensors and metadata (read and write), the JSON of their header, and
 * attention traces (q, k, v and the optional o of a model, checked for consistent shapes). JDK only.
 */
module hflash.io {
  exports hflash.io;
}
