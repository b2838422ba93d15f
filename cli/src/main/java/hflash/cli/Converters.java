package hflash.cli;

import hflash.engine.AttentionMode;
import hflash.memory.DType;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** picocli converters that turn the library's IllegalArgumentException messages into one-line usage errors. */
final class Converters {

  private Converters() {}

  static final class DTypeConverter implements ITypeConverter<DType> {
    @Override
    public DType convert(String value) {
      try {
        return DType.parse(value);
      } catch (IllegalArgumentException e) {
        throw new TypeConversionException(e.getMessage());
      }
    }
  }

  static final class ModeConverter implements ITypeConverter<AttentionMode> {
    @Override
    public AttentionMode convert(String value) {
      try {
        return AttentionMode.parse(value);
      } catch (IllegalArgumentException e) {
        throw new TypeConversionException(e.getMessage());
      }
    }
  }
}
