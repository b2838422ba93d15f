package hflash.jlama;

import com.github.tjake.jlama.tensor.AbstractTensor;

/**
 * What the adapter's attention needs from the model subclasses ({@link HflashLlamaModel},
 * {@link HflashMistralModel}, {@link HflashQwen2Model}): the sessions, and Jlama's own
 * {@code maybeQuantize} (protected in Jlama) for the output projection's input.
 */
interface HflashModel {

  /** The sessions of this model; set right after Jlama's constructor returns. */
  Sessions hflashSessions();

  /** Jlama's {@code AbstractModel.maybeQuantize} of this model. */
  AbstractTensor quantizeForProjection(AbstractTensor t);
}
