package hflash.cli;

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
}
