    for (int64_t i = 0; i < rows; ++i) {
        const float *xi = x + i * cols;
        float *oi = out + i * cols;
        for (int64_t j = 0; j < cols - 1; ++j) {
            const float v = xi[j] + bias[j];
            oi[j] = v > 0.0f ? v : 0.0f;
        }
    }
