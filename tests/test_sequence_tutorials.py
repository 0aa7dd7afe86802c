"""Public Keras sequence tutorials, their model code as published with only the imports
changed (``keras`` -> ``pynn``) and the datasets replaced by small synthetic ones of the
same shapes and dtypes (IMDB and the translation corpus are not on this machine):

* keras-io "Bidirectional LSTM on IMDB" (examples/nlp/bidirectional_lstm_imdb.py);
* keras-io "Character-level recurrent sequence-to-sequence model"
  (examples/nlp/lstm_seq2seq.py), training and the inference models built from the
  trained model's layers;
* keras-io "Timeseries forecasting for weather prediction"
  (examples/timeseries/timeseries_weather_forecasting.py), the model part.
"""
import numpy as np

import pynn as keras
from pynn import layers


def test_bidirectional_lstm_imdb():
    max_features = 20000  # Only consider the top 20k words
    maxlen = 200  # Only consider the first 200 words of each movie review

    # Input for variable-length sequences of integers
    inputs = keras.Input(shape=(None,), dtype="int32")
    # Embed each integer in a 128-dimensional vector
    x = layers.Embedding(max_features, 128)(inputs)
    # Add 2 bidirectional LSTMs
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(64))(x)
    # Add a classifier
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.summary()

    rng = np.random.default_rng(0)
    x_train = [list(rng.integers(1, max_features, rng.integers(20, 300))) for _ in range(64)]
    y_train = rng.integers(0, 2, 64)
    x_val = [list(rng.integers(1, max_features, rng.integers(20, 300))) for _ in range(16)]
    y_val = rng.integers(0, 2, 16)
    # Use pad_sequence to standardize sequence length:
    # this will truncate sequences longer than 200 words and zero-pad sequences shorter
    # than 200 words.
    x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
    x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)

    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=1,
                        validation_data=(x_val, y_val))
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert x_train.shape == (64, 200) and model.count_params() == 2_757_761


def test_lstm_seq2seq_training_and_inference_models():
    batch_size = 64  # Batch size for training.
    epochs = 1  # Number of epochs to train for.
    latent_dim = 16  # Latent dimensionality of the encoding space (256 in the tutorial).
    num_samples = 96
    num_encoder_tokens, num_decoder_tokens = 11, 13
    max_encoder_seq_length, max_decoder_seq_length = 7, 9
    rng = np.random.default_rng(1)
    encoder_input_data = np.zeros((num_samples, max_encoder_seq_length, num_encoder_tokens),
                                  dtype="float32")
    decoder_input_data = np.zeros((num_samples, max_decoder_seq_length, num_decoder_tokens),
                                  dtype="float32")
    decoder_target_data = np.zeros((num_samples, max_decoder_seq_length, num_decoder_tokens),
                                   dtype="float32")
    for i in range(num_samples):
        for t in range(max_encoder_seq_length):
            encoder_input_data[i, t, rng.integers(num_encoder_tokens)] = 1.0
        tokens = rng.integers(num_decoder_tokens, size=max_decoder_seq_length + 1)
        for t in range(max_decoder_seq_length):
            decoder_input_data[i, t, tokens[t]] = 1.0
            decoder_target_data[i, t, tokens[t + 1]] = 1.0

    # Define an input sequence and process it.
    encoder_inputs = keras.Input(shape=(None, num_encoder_tokens))
    encoder = keras.layers.LSTM(latent_dim, return_state=True)
    encoder_outputs, state_h, state_c = encoder(encoder_inputs)

    # We discard `encoder_outputs` and only keep the states.
    encoder_states = [state_h, state_c]

    # Set up the decoder, using `encoder_states` as initial state.
    decoder_inputs = keras.Input(shape=(None, num_decoder_tokens))

    # We set up our decoder to return full output sequences,
    # and to return internal states as well. We don't use the
    # return states in the training model, but we will use them in inference.
    decoder_lstm = keras.layers.LSTM(latent_dim, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = keras.layers.Dense(num_decoder_tokens, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)

    # Define the model that will turn
    # `encoder_input_data` & `decoder_input_data` into `decoder_target_data`
    model = keras.Model([encoder_inputs, decoder_inputs], decoder_outputs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit([encoder_input_data, decoder_input_data], decoder_target_data,
              batch_size=batch_size, epochs=epochs, validation_split=0.2)
    # Save model
    model.save("/tmp/pynn_s2s.keras")

    # Define sampling models
    # Restore the model and construct the encoder and decoder.
    model = keras.models.load_model("/tmp/pynn_s2s.keras")

    encoder_inputs = model.input[0]  # input_1
    encoder_outputs, state_h_enc, state_c_enc = model.layers[2].output  # lstm_1
    encoder_states = [state_h_enc, state_c_enc]
    encoder_model = keras.Model(encoder_inputs, encoder_states)

    decoder_inputs = model.input[1]  # input_2
    decoder_state_input_h = keras.Input(shape=(latent_dim,))
    decoder_state_input_c = keras.Input(shape=(latent_dim,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_lstm = model.layers[3]
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(
        decoder_inputs, initial_state=decoder_states_inputs)
    decoder_states = [state_h_dec, state_c_dec]
    decoder_dense = model.layers[4]
    decoder_outputs = decoder_dense(decoder_outputs)
    decoder_model = keras.Model([decoder_inputs] + decoder_states_inputs,
                                [decoder_outputs] + decoder_states)

    # decode_sequence's loop: one token at a time from the encoder's states
    input_seq = encoder_input_data[:1]
    states_value = encoder_model.predict(input_seq, verbose=0)
    target_seq = np.zeros((1, 1, num_decoder_tokens))
    target_seq[0, 0, 0] = 1.0
    full = model.predict([input_seq, decoder_input_data[:1]], verbose=0)
    for t in range(3):
        output_tokens, h, c = decoder_model.predict([target_seq] + states_value, verbose=0)
        target_seq = np.zeros((1, 1, num_decoder_tokens))
        target_seq[0, 0, np.argmax(output_tokens[0, -1, :])] = 1.0
        states_value = [h, c]
        assert output_tokens.shape == (1, 1, num_decoder_tokens)
    # the step-by-step decoder equals the training model on the same inputs
    states_value = encoder_model.predict(input_seq, verbose=0)
    steps = []
    for t in range(max_decoder_seq_length):
        out, h, c = decoder_model.predict([decoder_input_data[:1, t:t + 1]] + states_value,
                                          verbose=0)
        steps.append(out[0, 0])
        states_value = [h, c]
    np.testing.assert_allclose(np.array(steps), full[0], rtol=1e-5, atol=1e-6)


def test_timeseries_weather_forecasting_model():
    rng = np.random.default_rng(2)
    inputs_np = rng.standard_normal((256, 120, 7)).astype("float32")
    targets_np = rng.standard_normal((256, 1)).astype("float32")
    learning_rate = 0.001

    inputs = keras.layers.Input(shape=(inputs_np.shape[1], inputs_np.shape[2]))
    lstm_out = keras.layers.LSTM(32)(inputs)
    outputs = keras.layers.Dense(1)(lstm_out)

    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    model.summary()

    path_checkpoint = "/tmp/pynn_model_checkpoint.weights.h5"
    es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)
    modelckpt_callback = keras.callbacks.ModelCheckpoint(
        monitor="val_loss", filepath=path_checkpoint, verbose=1, save_weights_only=True,
        save_best_only=True)
    history = model.fit(inputs_np[:192], targets_np[:192], epochs=2,
                        validation_data=(inputs_np[192:], targets_np[192:]),
                        callbacks=[es_callback, modelckpt_callback])
    assert len(history.history["val_loss"]) == 2
