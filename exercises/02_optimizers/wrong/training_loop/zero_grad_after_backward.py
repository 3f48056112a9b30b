initial = [group["lr"] for group in optimizer.param_groups]
history = []
for epoch in range(epochs):
    for group, lr in zip(optimizer.param_groups, initial):
        group["lr"] = lr * math.exp(-lr_decay * epoch)
    total = 0.0
    for inputs, targets in batches:
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        total += loss.item()
    history.append(total / len(batches))
return history
